//! The six calls of Segment's spec.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentCall {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl SegmentCall {
    pub const ALL: [SegmentCall; 6] = [
        SegmentCall::Identify,
        SegmentCall::Track,
        SegmentCall::Page,
        SegmentCall::Screen,
        SegmentCall::Group,
        SegmentCall::Alias,
    ];

    /// The spec's name, as in a batch item's `type` and the endpoint's path.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentCall::Identify => "identify",
            SegmentCall::Track => "track",
            SegmentCall::Page => "page",
            SegmentCall::Screen => "screen",
            SegmentCall::Group => "group",
            SegmentCall::Alias => "alias",
        }
    }

    pub fn parse(text: &str) -> Option<SegmentCall> {
        SegmentCall::ALL.into_iter().find(|c| c.as_str() == text)
    }
}
