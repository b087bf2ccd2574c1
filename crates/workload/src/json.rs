//! A small JSON writer. Lines are written by hand, in a fixed key order,
//! so the output does not depend on serde_json features (such as
//! `preserve_order`) that other crates may switch on, and so generating is fast.

use std::fmt::{Display, Write};

/// The members of a JSON object, without the braces.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    buf: String,
}

impl Fields {
    pub(crate) fn new() -> Self {
        Fields {
            buf: String::with_capacity(128),
        }
    }

    fn key(&mut self, key: &str) {
        if !self.buf.is_empty() {
            self.buf.push(',');
        }
        escape_into(&mut self.buf, key);
        self.buf.push(':');
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        escape_into(&mut self.buf, value);
        self
    }

    /// A string value made of displayed parts, e.g. `format_args!("user-{n}")`.
    pub(crate) fn fmt(&mut self, key: &str, value: impl Display) -> &mut Self {
        let text = value.to_string();
        self.str(key, &text)
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        let _ = write!(self.buf, "{value}");
        self
    }

    pub(crate) fn object(&mut self, key: &str, members: &Fields) -> &mut Self {
        self.key(key);
        self.buf.push('{');
        self.buf.push_str(&members.buf);
        self.buf.push('}');
        self
    }

    pub(crate) fn strings(&mut self, key: &str, values: &[&str]) -> &mut Self {
        self.key(key);
        self.buf.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            escape_into(&mut self.buf, value);
        }
        self.buf.push(']');
        self
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.buf
    }
}

/// Appends `text` as a quoted JSON string.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_parseable_objects() {
        let mut inner = Fields::new();
        inner.int("nps", 9).str("comment", "say \"hi\"\\\n\u{1}é");
        let mut f = Fields::new();
        f.str("type", "survey")
            .object("answers", &inner)
            .strings("unset", &["a", "b"])
            .fmt("user_id", format_args!("user-{}", 3));
        f.object("empty", &Fields::new()).strings("none", &[]);
        let text = format!("{{{}}}", f.as_str());
        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["answers"]["comment"], "say \"hi\"\\\n\u{1}é");
        assert_eq!(value["answers"]["nps"], 9);
        assert_eq!(value["unset"], serde_json::json!(["a", "b"]));
        assert_eq!(value["user_id"], "user-3");
        assert_eq!(value["empty"], serde_json::json!({}));
        assert_eq!(value["none"], serde_json::json!([]));
    }
}
