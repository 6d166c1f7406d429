//! A list page read as it arrives. The `metadata` object and each element of `items` are handed
//! out as soon as their last byte is in, so memory holds one object rather than the page, and the
//! continue token (kube-apiserver writes `metadata` before `items`) is known while the items are
//! still on the wire. Only the list's own structure is checked here; serde decodes each part.

use super::proto::{self, ProtoReader};
use super::wire::Part;

/// A page in the encoding the server chose.
#[derive(Debug)]
pub enum Reader {
    Json(PageReader),
    Protobuf(ProtoReader),
}

impl Reader {
    pub fn for_content_type(content_type: &str) -> Self {
        if proto::is_protobuf(content_type) {
            Reader::Protobuf(ProtoReader::default())
        } else {
            Reader::Json(PageReader::default())
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            Reader::Json(r) => r.feed(chunk),
            Reader::Protobuf(r) => r.feed(chunk),
        }
    }

    pub fn next_part(&mut self) -> Result<Option<Part<'_>>, String> {
        match self {
            Reader::Json(r) => r.next_part(),
            Reader::Protobuf(r) => r.next_part(),
        }
    }

    pub fn finish(&self) -> Result<(), String> {
        match self {
            Reader::Json(r) => r.finish(),
            Reader::Protobuf(r) => r.finish(),
        }
    }
}

/// The top-level field whose value is being read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Field {
    #[default]
    Other,
    Metadata,
    Items,
}

#[derive(Debug, Default)]
pub struct PageReader {
    /// Bytes not yet handed out; `buf[..pos]` is scanned.
    buf: Vec<u8>,
    pos: usize,
    depth: u32,
    in_string: bool,
    /// At depth 1, whether the next string is a key.
    expect_key: bool,
    /// Where the key being read starts (depth 1).
    key_start: Option<usize>,
    field: Field,
    /// Inside the `items` array, whose elements start at depth 2.
    in_items: bool,
    /// Where the part being collected starts.
    start: Option<usize>,
    done: bool,
}

impl PageReader {
    /// Adds the next bytes of the answer.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(chunk);
    }

    /// The next part completed by the bytes fed so far, if any. An error is a message for the
    /// user: the answer is not a JSON list object.
    pub fn next_part(&mut self) -> Result<Option<Part<'_>>, String> {
        let mut found = None;
        while found.is_none() && self.pos < self.buf.len() {
            if self.in_string {
                if !self.skip_string() {
                    break;
                }
                continue;
            }
            found = self.structure()?;
        }
        Ok(found.map(|(metadata, s)| {
            let bytes = &self.buf[s..self.pos];
            if metadata {
                Part::Metadata(bytes)
            } else {
                Part::Item(bytes)
            }
        }))
    }

    /// Moves through a string; false when it needs the next chunk to go on.
    fn skip_string(&mut self) -> bool {
        // The bulk of a page is strings: jump to the next quote or backslash.
        match memchr::memchr2(b'"', b'\\', &self.buf[self.pos..]) {
            None => self.pos = self.buf.len(),
            Some(i) if self.buf[self.pos + i] == b'\\' => {
                if self.pos + i + 1 >= self.buf.len() {
                    // The escaped byte is in the next chunk.
                    self.pos += i;
                    return false;
                }
                self.pos += i + 2;
            }
            Some(i) => {
                self.pos += i + 1;
                self.in_string = false;
                if let Some(k) = self.key_start.take() {
                    self.field = match &self.buf[k..self.pos - 1] {
                        b"metadata" => Field::Metadata,
                        b"items" => Field::Items,
                        _ => Field::Other,
                    };
                }
            }
        }
        true
    }

    /// Reads one byte outside strings: Some((is metadata, start)) when it ends a part.
    fn structure(&mut self) -> Result<Option<(bool, usize)>, String> {
        let at = self.pos;
        let b = self.buf[at];
        self.pos += 1;
        if b.is_ascii_whitespace() {
            return Ok(None);
        }
        if self.done {
            return Err("the answer goes on after the list".into());
        }
        match (b, self.depth) {
            (b'{', 0) => {
                self.depth = 1;
                self.expect_key = true;
            }
            (_, 0) => return Err("the answer is not a JSON object".into()),
            (b, 2) if self.in_items && !matches!(b, b'{' | b',' | b']') => {
                return Err("an item of the list is not an object".into());
            }
            (b'"', 1) if self.expect_key => {
                self.in_string = true;
                self.key_start = Some(self.pos);
            }
            (b':', 1) => self.expect_key = false,
            (b',', 1) => {
                self.expect_key = true;
                self.field = Field::Other;
            }
            (b'}', 1) => {
                self.depth = 0;
                self.done = true;
            }
            (b'"', _) => self.in_string = true,
            (b'{' | b'[', d) => {
                match (b, d, self.field) {
                    (b'{', 1, Field::Metadata) => self.start = Some(at),
                    (b'[', 1, Field::Items) => self.in_items = true,
                    (b'{', 2, _) if self.in_items => self.start = Some(at),
                    _ => {}
                }
                self.depth += 1;
            }
            (b'}' | b']', d) => {
                self.depth = d - 1;
                match (self.depth, self.start) {
                    (1, Some(s)) if self.field == Field::Metadata => {
                        self.start = None;
                        return Ok(Some((true, s)));
                    }
                    (2, Some(s)) if self.in_items => {
                        self.start = None;
                        return Ok(Some((false, s)));
                    }
                    (1, _) => self.in_items = false,
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// Drops the bytes no part still needs.
    fn compact(&mut self) {
        let keep = [self.start, self.key_start]
            .into_iter()
            .flatten()
            .fold(self.pos, usize::min);
        if keep > 0 {
            self.buf.drain(..keep);
            self.pos -= keep;
            self.start = self.start.map(|s| s - keep);
            self.key_start = self.key_start.map(|s| s - keep);
        }
    }

    /// Checks that the list ended.
    pub fn finish(&self) -> Result<(), String> {
        if self.done {
            Ok(())
        } else {
            Err("the answer ended before the list did".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(chunks: &[&[u8]]) -> Result<(Vec<String>, Vec<String>), String> {
        let mut reader = PageReader::default();
        let (mut meta, mut items) = (Vec::new(), Vec::new());
        for c in chunks {
            reader.feed(c);
            while let Some(p) = reader.next_part()? {
                match p {
                    Part::Metadata(b) => meta.push(String::from_utf8(b.to_vec()).unwrap()),
                    Part::Item(b) => items.push(String::from_utf8(b.to_vec()).unwrap()),
                }
            }
        }
        reader.finish()?;
        Ok((meta, items))
    }

    #[test]
    fn hands_out_metadata_and_items() {
        let page = br#" {"kind":"IPAddressList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"a\"}"},"items":[{"metadata":{"name":"10.0.0.1"}},{"spec":{"x":["}",{}]}}]} "#;
        let (meta, items) = read(&[page]).unwrap();
        assert_eq!(meta, [r#"{"resourceVersion":"7","continue":"a\"}"}"#]);
        assert_eq!(
            items,
            [
                r#"{"metadata":{"name":"10.0.0.1"}}"#,
                r#"{"spec":{"x":["}",{}]}}"#
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_a_list_object() {
        for (page, want) in [
            (&b"[1]"[..], "not a JSON object"),
            (b"<html>", "not a JSON object"),
            (br#"{"items":[1]}"#, "not an object"),
            (br#"{"items":[{}]"#, "ended before"),
            (br#"{"items":[]}}"#, "goes on after"),
            (b"", "ended before"),
        ] {
            let err = read(&[page]).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn keeps_only_the_part_in_progress() {
        let mut reader = PageReader::default();
        reader.feed(br#"{"metadata":{},"items":[{"a":1},{"b":"#);
        while reader.next_part().unwrap().is_some() {}
        reader.feed(b"");
        assert_eq!(reader.buf, br#"{"b":"#);
    }

    /// A JSON value of any shape, strings with escapes and quotes inside.
    fn value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\{}\\[\\],:é\n]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z\"{]{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // Against serde_json reading the whole page: the same metadata and items, however the
        // bytes are cut into chunks and spaced, whatever the other fields hold.
        #[test]
        fn agrees_with_a_whole_page_parse(
            meta in prop::collection::btree_map("[a-z]{1,4}", value(), 0..3),
            items in prop::collection::vec(prop::collection::btree_map("[a-z\"]{0,4}", value(), 0..4), 0..6),
            other in value(),
            pretty in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let page = serde_json::json!({"kind": other, "metadata": meta, "items": items, "z": other});
            let text = if pretty { serde_json::to_string_pretty(&page) } else { serde_json::to_string(&page) }.unwrap();
            let bytes = text.as_bytes();
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.extend([0, bytes.len()]);
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            let (got_meta, got_items) = read(&chunks).unwrap();
            let parse = |s: &String| serde_json::from_str::<serde_json::Value>(s).unwrap();
            prop_assert_eq!(got_meta.iter().map(parse).collect::<Vec<_>>(), vec![page["metadata"].clone()]);
            prop_assert_eq!(got_items.iter().map(parse).collect::<Vec<_>>(), page["items"].as_array().unwrap().clone());
        }
    }

    proptest! {
        // Any bytes, cut anywhere: parts or a message, never a panic, and never more buffered
        // than was fed.
        #[test]
        fn any_bytes_end_in_parts_or_a_message(
            bytes in prop::collection::vec(prop::sample::select(b"{}[]\",: ax1\\".to_vec()), 0..64),
            cut in any::<prop::sample::Index>(),
        ) {
            let cut = cut.index(bytes.len() + 1);
            let mut reader = PageReader::default();
            for chunk in [&bytes[..cut], &bytes[cut..]] {
                reader.feed(chunk);
                while let Ok(Some(_)) = reader.next_part() {}
            }
            let _ = reader.finish();
            prop_assert!(reader.buf.len() <= bytes.len());
        }
    }
}
