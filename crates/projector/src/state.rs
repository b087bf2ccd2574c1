//! What the fold keeps, per identity rather than per event, in a compact
//! binary encoding (postcard): each email's and device's links and the
//! identifiers linking to it ([`NodeRecord`]), each target's profile
//! contributions and monthly activity ([`TargetRecord`]), the events of
//! emails and devices (which a late link can still move, [`HistoryRecord`]),
//! and one fixed-width hash per message id for dedupe ([`MessageHash`]).

use std::collections::{BTreeMap, BTreeSet};

use idfold_events::{EventKind, EventOrder, EventTime, Identifier, Month, SurveyAction};
use idfold_stitching::{Link, LinkTimeline};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::mau::Activity;
use crate::profile::ProfileAggregate;
use crate::record::{FoldRecord, SurveyStep, TraitChanges};

/// The first 16 bytes of SHA-256 of a message id: fixed width, and no two
/// of a workspace's ids share one in practice (2^-64 at 4 billion ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageHash(pub [u8; 16]);

impl MessageHash {
    pub fn of(message_id: &str) -> MessageHash {
        let digest = Sha256::digest(message_id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        MessageHash(bytes)
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<MessageHash> {
        if text.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(MessageHash(bytes))
    }
}

/// What dedupe knows of a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenMark {
    Folded,
    /// An erased person's event: dropped whenever it comes again.
    Forgotten,
}

impl SeenMark {
    pub fn to_byte(self) -> u8 {
        match self {
            SeenMark::Folded => 0,
            SeenMark::Forgotten => 1,
        }
    }

    pub fn from_byte(byte: u8) -> SeenMark {
        if byte == 1 {
            SeenMark::Forgotten
        } else {
            SeenMark::Folded
        }
    }
}

/// An identifier's place in the graph: its own links (emails and devices)
/// and who links to it (users and emails), and whether it has events kept
/// in its history (a flag, not a count: a node changes only when its links
/// do or its first event comes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRecord {
    pub timeline: LinkTimeline,
    pub referrers: BTreeSet<Identifier>,
    pub has_history: bool,
}

impl NodeRecord {
    /// Known to the read side (`i` entries): it has events or links.
    pub fn is_known(&self) -> bool {
        self.has_history || !self.timeline.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct NodeWire {
    links: Vec<(EventTime, String, String)>,
    referrers: Vec<String>,
    has_history: bool,
}

/// One profile target: each source's contribution to its profile (the
/// source is the subject identifier of the events), its activity per month
/// (as a MAU target), and the emails and devices that resolve to it now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRecord {
    pub contributions: BTreeMap<Identifier, ProfileAggregate>,
    pub months: BTreeMap<Month, Activity>,
    pub resolving: BTreeSet<Identifier>,
}

impl TargetRecord {
    pub fn is_empty(&self) -> bool {
        self.contributions.is_empty() && self.months.is_empty() && self.resolving.is_empty()
    }

    /// The profile: every contribution merged; None without any.
    pub fn profile(&self) -> Option<ProfileAggregate> {
        let mut sources = self.contributions.values();
        let mut merged = sources.next()?.clone();
        for other in sources {
            merged.merge(other);
        }
        (!merged.is_empty()).then_some(merged)
    }
}

#[derive(Serialize, Deserialize)]
struct TargetWire {
    contributions: Vec<(String, ProfileAggregate)>,
    months: Vec<((i32, u8), Activity)>,
    resolving: Vec<String>,
}

fn id_text(id: &Identifier) -> String {
    id.to_string()
}

fn parse_id(text: &str) -> Result<Identifier, String> {
    Identifier::parse(text).ok_or_else(|| format!("{text:?} is not an identifier"))
}

pub fn encode_node(node: &NodeRecord) -> Vec<u8> {
    let wire = NodeWire {
        links: node
            .timeline
            .links()
            .iter()
            .map(|l| (l.key.time, l.key.message_id.clone(), id_text(&l.target)))
            .collect(),
        referrers: node.referrers.iter().map(id_text).collect(),
        has_history: node.has_history,
    };
    postcard::to_stdvec(&wire).unwrap_or_default()
}

pub fn decode_node(bytes: &[u8]) -> Result<NodeRecord, String> {
    let wire: NodeWire = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut links = Vec::with_capacity(wire.links.len());
    for (time, message_id, target) in wire.links {
        links.push(Link {
            key: EventOrder { time, message_id },
            target: parse_id(&target)?,
        });
    }
    Ok(NodeRecord {
        timeline: LinkTimeline::from_links(links),
        referrers: wire
            .referrers
            .iter()
            .map(|r| parse_id(r))
            .collect::<Result<_, _>>()?,
        has_history: wire.has_history,
    })
}

pub fn encode_target(target: &TargetRecord) -> Vec<u8> {
    let wire = TargetWire {
        contributions: target
            .contributions
            .iter()
            .map(|(id, a)| (id_text(id), a.clone()))
            .collect(),
        months: target
            .months
            .iter()
            .map(|(m, a)| ((m.year, m.month), *a))
            .collect(),
        resolving: target.resolving.iter().map(id_text).collect(),
    };
    postcard::to_stdvec(&wire).unwrap_or_default()
}

pub fn decode_target(bytes: &[u8]) -> Result<TargetRecord, String> {
    let wire: TargetWire = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut contributions = BTreeMap::new();
    for (id, aggregate) in wire.contributions {
        contributions.insert(parse_id(&id)?, aggregate);
    }
    Ok(TargetRecord {
        contributions,
        months: wire
            .months
            .into_iter()
            .map(|((year, month), a)| (Month { year, month }, a))
            .collect(),
        resolving: wire
            .resolving
            .iter()
            .map(|r| parse_id(r))
            .collect::<Result<_, _>>()?,
    })
}

/// One email's or device's event as its history keeps it: what placing it
/// again and folding it into a profile need. JSON values are kept as text.
#[derive(Serialize, Deserialize)]
struct HistoryRecord {
    message_id: String,
    time: EventTime,
    kind: u8,
    user_id: Option<String>,
    email: Option<String>,
    anonymous_id: Option<String>,
    traits: Option<HistoryTraits>,
    track_event: Option<String>,
    survey: Option<HistorySurvey>,
}

/// `set`, `set_once` (name, JSON text) and `unset` of a traits change.
type HistoryTraits = (Vec<(String, String)>, Vec<(String, String)>, Vec<String>);

#[derive(Serialize, Deserialize)]
struct HistorySurvey {
    survey_id: String,
    action: u8,
    response_id: Option<String>,
    answers: Vec<(String, String)>,
    context: Vec<(String, String)>,
}

fn map_text(map: &Map<String, Value>) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

fn text_map(pairs: Vec<(String, String)>) -> Result<Map<String, Value>, String> {
    pairs
        .into_iter()
        .map(|(k, v)| Ok((k, serde_json::from_str(&v).map_err(|e| e.to_string())?)))
        .collect()
}

fn kind_byte(kind: EventKind) -> u8 {
    EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

fn action_byte(action: SurveyAction) -> u8 {
    SurveyAction::ALL
        .iter()
        .position(|a| *a == action)
        .unwrap_or(0) as u8
}

/// Appends one record to a history chunk (length-prefixed postcard).
pub fn encode_history_record(record: &FoldRecord, out: &mut Vec<u8>) {
    let wire = HistoryRecord {
        message_id: record.message_id.clone(),
        time: record.time,
        kind: kind_byte(record.kind),
        user_id: record.user_id.clone(),
        email: record.email.clone(),
        anonymous_id: record.anonymous_id.clone(),
        traits: record
            .traits
            .as_ref()
            .map(|t| (map_text(&t.set), map_text(&t.set_once), t.unset.clone())),
        track_event: record.track_event.clone(),
        survey: record.survey.as_ref().map(|s| HistorySurvey {
            survey_id: s.survey_id.clone(),
            action: action_byte(s.action),
            response_id: s.response_id.clone(),
            answers: map_text(&s.answers),
            context: map_text(&s.context),
        }),
    };
    let bytes = postcard::to_stdvec(&wire).unwrap_or_default();
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// Every record of a history chunk.
pub fn decode_history_chunk(mut bytes: &[u8]) -> Result<Vec<FoldRecord>, String> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(4).ok_or("truncated length")?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| "length")?) as usize;
        let (body, rest) = rest.split_at_checked(len).ok_or("truncated record")?;
        bytes = rest;
        let wire: HistoryRecord = postcard::from_bytes(body).map_err(|e| e.to_string())?;
        let kind = *EventKind::ALL
            .get(usize::from(wire.kind))
            .ok_or("unknown kind")?;
        let traits = match wire.traits {
            Some((set, set_once, unset)) => Some(TraitChanges {
                set: text_map(set)?,
                set_once: text_map(set_once)?,
                unset,
            }),
            None => None,
        };
        let survey = match wire.survey {
            Some(s) => Some(SurveyStep {
                survey_id: s.survey_id,
                action: *SurveyAction::ALL
                    .get(usize::from(s.action))
                    .ok_or("unknown action")?,
                response_id: s.response_id,
                answers: text_map(s.answers)?,
                context: text_map(s.context)?,
            }),
            None => None,
        };
        records.push(FoldRecord {
            message_id: wire.message_id,
            time: wire.time,
            kind,
            user_id: wire.user_id,
            email: wire.email,
            anonymous_id: wire.anonymous_id,
            traits,
            track_event: wire.track_event,
            survey,
        });
    }
    Ok(records)
}

/// A user's events are kept only as their hashes (what an erasure of the
/// user must forget): users are never merged, so their events never move.
pub fn encode_hashes(hashes: &[MessageHash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

pub fn decode_hashes(bytes: &[u8]) -> Vec<MessageHash> {
    bytes
        .chunks_exact(16)
        .map(|c| {
            let mut h = [0u8; 16];
            h.copy_from_slice(c);
            MessageHash(h)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_round_trip() {
        let record = FoldRecord {
            message_id: "m1".into(),
            time: -5,
            kind: EventKind::Survey,
            user_id: None,
            email: Some("a@b.co".into()),
            anonymous_id: Some("d".into()),
            traits: None,
            track_event: None,
            survey: Some(SurveyStep {
                survey_id: "s".into(),
                action: SurveyAction::Responded,
                response_id: Some("r".into()),
                answers: json!({"q": [1, {"x": null}], "n": 1.5})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                context: Map::new(),
            }),
        };
        let mut chunk = Vec::new();
        encode_history_record(&record, &mut chunk);
        encode_history_record(&record, &mut chunk);
        assert_eq!(
            decode_history_chunk(&chunk),
            Ok(vec![record.clone(), record])
        );
        assert!(decode_history_chunk(&chunk[..chunk.len() - 1]).is_err());

        let mut target = TargetRecord::default();
        let mut aggregate = ProfileAggregate::default();
        aggregate.apply(&FoldRecord {
            traits: Some(TraitChanges {
                set: json!({"plan": "pro"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ..TraitChanges::default()
            }),
            kind: EventKind::Traits,
            ..FoldRecord::from_parts("m2", 7)
        });
        target
            .contributions
            .insert(Identifier::user("u"), aggregate);
        target.months.insert(
            Month {
                year: 2026,
                month: 2,
            },
            Activity {
                events: 3,
                survey_events: 1,
            },
        );
        target.resolving.insert(Identifier::anonymous("d"));
        assert_eq!(decode_target(&encode_target(&target)), Ok(target));

        let hash = MessageHash::of("m1");
        assert_eq!(MessageHash::from_hex(&hash.to_hex()), Some(hash));
    }
}
