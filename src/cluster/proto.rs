//! kube-apiserver's protobuf encoding (`application/vnd.kubernetes.protobuf`) of the three lists
//! every check reads: ServiceCIDRs, IPAddresses and Services. It is about a third of the JSON's
//! bytes and costs the server about half the time to write. Only the fields the plugin uses are
//! declared (prost skips the rest), with the tags of k8s.io/api's `generated.proto`, and each
//! message becomes the same `wire` type as its JSON, so one conversion into the model serves both.

use std::collections::BTreeMap;

use prost::Message;

use super::wire::{self, Part};

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// What a list asks for: protobuf, or JSON from a server (or a proxy) that has no protobuf.
pub const ACCEPT: &str = "application/vnd.kubernetes.protobuf, application/json";
/// Every protobuf answer starts with these bytes, then a `runtime.Unknown` holding the object.
const MAGIC: &[u8] = b"k8s\0";

/// Whether an answer with this Content-Type is protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
}

/// Kubernetes writes a zero time as an empty message and any other, the epoch too, with its
/// seconds (it reads back whole seconds only).
fn stamp(t: Option<Time>) -> Option<wire::Stamp> {
    t.and_then(|t| t.seconds).map(wire::Stamp::Seconds)
}

/// Text as the server's JSON gives it. Go strings are bytes, and a protobuf request can store any
/// in a field the server does not validate (an IPAddress's `parentRef.name`, a condition's
/// message); Go's JSON encoder writes each byte that is not UTF-8 as U+FFFD, and so does this,
/// where prost would refuse the whole list.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| {
        let mut out = String::with_capacity(e.as_bytes().len() + 8);
        for chunk in e.as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            out.extend(std::iter::repeat_n(
                char::REPLACEMENT_CHARACTER,
                chunk.invalid().len(),
            ));
        }
        out
    })
}

fn texts(list: Vec<Vec<u8>>) -> Vec<String> {
    list.into_iter().map(text).collect()
}

#[derive(Clone, PartialEq, Message)]
struct ManagedFieldsEntry {
    #[prost(bytes = "vec", tag = "1")]
    manager: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    subresource: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    namespace: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    uid: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    resource_version: Vec<u8>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<Time>,
    /// Label keys and values are validated by every write, so they are always UTF-8.
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(bytes = "vec", repeated, tag = "14")]
    finalizers: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "17")]
    managed_fields: Vec<ManagedFieldsEntry>,
}

impl From<Option<ObjectMeta>> for wire::Meta {
    fn from(m: Option<ObjectMeta>) -> Self {
        let m = m.unwrap_or_default();
        wire::Meta {
            name: text(m.name),
            namespace: text(m.namespace),
            uid: text(m.uid),
            resource_version: text(m.resource_version),
            creation_timestamp: stamp(m.creation_timestamp),
            deletion_timestamp: stamp(m.deletion_timestamp),
            finalizers: texts(m.finalizers),
            labels: m.labels,
            managed_fields: m
                .managed_fields
                .into_iter()
                .map(|f| wire::ManagedFields {
                    manager: text(f.manager),
                    subresource: text(f.subresource),
                })
                .collect(),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
struct ListMeta {
    #[prost(bytes = "vec", tag = "2")]
    resource_version: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    continue_token: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Condition {
    #[prost(bytes = "vec", tag = "1")]
    type_: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    status: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    last_transition_time: Option<Time>,
    #[prost(bytes = "vec", tag = "5")]
    reason: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    message: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceCidrSpec {
    #[prost(bytes = "vec", repeated, tag = "1")]
    cidrs: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceCidrStatus {
    #[prost(message, repeated, tag = "1")]
    conditions: Vec<Condition>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceCidr {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<ServiceCidrSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<ServiceCidrStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct ParentReference {
    #[prost(bytes = "vec", tag = "1")]
    group: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    resource: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    namespace: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    name: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct IpAddressSpec {
    #[prost(message, optional, tag = "1")]
    parent_ref: Option<ParentReference>,
}

#[derive(Clone, PartialEq, Message)]
struct IpAddress {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<IpAddressSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceSpec {
    #[prost(bytes = "vec", tag = "3")]
    cluster_ip: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "18")]
    cluster_ips: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct Service {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<ServiceSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(bytes = "vec", tag = "3")]
    message: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    reason: Vec<u8>,
    #[prost(int32, tag = "6")]
    code: i32,
}

/// Decodes one protobuf message into its wire type.
pub type Decoder<W> = fn(&[u8]) -> Result<W, prost::DecodeError>;

/// A wire type that has a protobuf message.
pub trait FromProtobuf: Sized {
    fn from_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError>;
}

impl FromProtobuf for wire::ListMeta {
    fn from_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let m = ListMeta::decode(bytes)?;
        Ok(wire::ListMeta {
            continue_token: Some(text(m.continue_token)),
            resource_version: text(m.resource_version),
        })
    }
}

impl FromProtobuf for wire::WireServiceCidr {
    fn from_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let r = ServiceCidr::decode(bytes)?;
        Ok(wire::WireServiceCidr {
            metadata: r.metadata.into(),
            spec: wire::ServiceCidrSpec {
                cidrs: texts(r.spec.unwrap_or_default().cidrs),
            },
            status: wire::ServiceCidrStatus {
                conditions: r
                    .status
                    .unwrap_or_default()
                    .conditions
                    .into_iter()
                    .map(|c| wire::Condition {
                        type_: text(c.type_),
                        status: text(c.status),
                        reason: text(c.reason),
                        message: text(c.message),
                        last_transition_time: stamp(c.last_transition_time),
                    })
                    .collect(),
            },
        })
    }
}

impl FromProtobuf for wire::WireIpAddress {
    fn from_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let a = IpAddress::decode(bytes)?;
        Ok(wire::WireIpAddress {
            metadata: a.metadata.into(),
            spec: wire::IpAddressSpec {
                parent_ref: a
                    .spec
                    .and_then(|s| s.parent_ref)
                    .map(|p| wire::WireParentRef {
                        group: text(p.group),
                        resource: text(p.resource),
                        namespace: text(p.namespace),
                        name: text(p.name),
                    }),
            },
        })
    }
}

impl FromProtobuf for wire::WireService {
    fn from_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let s = Service::decode(bytes)?;
        let spec = s.spec.unwrap_or_default();
        Ok(wire::WireService {
            metadata: s.metadata.into(),
            spec: wire::ServiceSpec {
                cluster_ip: Some(text(spec.cluster_ip)),
                cluster_ips: texts(spec.cluster_ips),
            },
        })
    }
}

/// The Status of a failed request, when the server wrote it in protobuf (a real one has a code).
pub fn status(body: &[u8]) -> Option<kube::core::Status> {
    let s = Status::decode(unwrap(body)?.ok()?).ok()?;
    let code = u16::try_from(s.code).ok().filter(|&c| c != 0)?;
    Some(kube::core::Status::failure(&text(s.message), &text(s.reason)).with_code(code))
}

/// The object inside a whole answer: its `runtime.Unknown` envelope's `raw` field. None when the
/// answer is not protobuf.
fn unwrap(body: &[u8]) -> Option<Result<&[u8], String>> {
    let mut rest = body.strip_prefix(MAGIC)?;
    loop {
        match field(rest) {
            Ok(Some(f)) if f.number == 2 && f.delimited => return Some(Ok(&rest[f.start..f.end])),
            Ok(Some(f)) => rest = &rest[f.end..],
            Ok(None) if rest.is_empty() => return Some(Err("the answer holds no object".into())),
            Ok(None) => return Some(Err("the answer ended inside a field".into())),
            Err(e) => return Some(Err(e)),
        }
    }
}

/// One field at the start of a buffer: its number, whether it is length-delimited, and where its
/// value starts and ends.
struct Field {
    number: u64,
    delimited: bool,
    start: usize,
    end: usize,
}

/// The field at the start of `buf`, or None when `buf` ends before the field does. Only varints
/// and length-delimited values occur in Kubernetes' messages.
fn field(buf: &[u8]) -> Result<Option<Field>, String> {
    let Some((key, at)) = varint(buf)? else {
        return Ok(None);
    };
    let (number, kind) = (key >> 3, key & 7);
    if number == 0 {
        return Err("a field numbered 0".into());
    }
    match kind {
        0 => Ok(varint(&buf[at..])?.map(|(_, n)| Field {
            number,
            delimited: false,
            start: at,
            end: at + n,
        })),
        2 => {
            let Some((len, n)) = varint(&buf[at..])? else {
                return Ok(None);
            };
            let start = at + n;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .ok_or("a field longer than memory")?;
            Ok((end <= buf.len()).then_some(Field {
                number,
                delimited: true,
                start,
                end,
            }))
        }
        k => Err(format!(
            "a field of wire type {k}, which Kubernetes does not write"
        )),
    }
}

/// A varint at the start of `buf` and its length, or None when `buf` ends inside it.
fn varint(buf: &[u8]) -> Result<Option<(u64, usize)>, String> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        // The tenth byte holds the 64th bit only, as prost and Go read it.
        if i == 9 && b > 1 {
            return Err("a varint beyond 64 bits".into());
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    Ok(None)
}

/// Where the reader is in the answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum At {
    #[default]
    Magic,
    /// Between the fields of the envelope.
    Envelope,
    /// Inside the list (the envelope's `raw`), with this many of its bytes still to come.
    List(usize),
}

/// A protobuf list read as it arrives, as `page::PageReader` reads JSON: the list's `metadata`
/// and each of its `items` are handed out once their last byte is in. The envelope and the list
/// say each field's length before it, so only one field is ever held.
#[derive(Debug, Default)]
pub struct ProtoReader {
    buf: Vec<u8>,
    pos: usize,
    at: At,
    seen_list: bool,
}

impl ProtoReader {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(chunk);
    }

    pub fn next_part(&mut self) -> Result<Option<Part<'_>>, String> {
        loop {
            let rest = &self.buf[self.pos..];
            match self.at {
                At::Magic => {
                    if rest.len() < MAGIC.len() {
                        if !MAGIC.starts_with(rest) {
                            return Err("the answer is not protobuf".into());
                        }
                        return Ok(None);
                    }
                    if !rest.starts_with(MAGIC) {
                        return Err("the answer is not protobuf".into());
                    }
                    self.pos += MAGIC.len();
                    self.at = At::Envelope;
                }
                At::Envelope if rest.is_empty() => return Ok(None),
                At::Envelope => {
                    // The list itself is not held whole: step inside it once its length is known.
                    let Some((key, at)) = varint(rest)? else {
                        return Ok(None);
                    };
                    if key == (2 << 3) | 2 {
                        let Some((len, n)) = varint(&rest[at..])? else {
                            return Ok(None);
                        };
                        if self.seen_list {
                            return Err("the answer holds two lists".into());
                        }
                        self.seen_list = true;
                        self.pos += at + n;
                        self.at = At::List(usize::try_from(len).map_err(|e| e.to_string())?);
                        continue;
                    }
                    let Some(f) = field(rest)? else {
                        return Ok(None);
                    };
                    self.pos += f.end;
                }
                At::List(0) => self.at = At::Envelope,
                At::List(left) => {
                    let Some(f) = field(rest)? else {
                        if rest.len() >= left {
                            return Err("a field of the list goes past the list's end".into());
                        }
                        return Ok(None);
                    };
                    if f.end > left {
                        return Err("a field of the list goes past the list's end".into());
                    }
                    if matches!(f.number, 1 | 2) && !f.delimited {
                        return Err("the list's metadata or an item is not a message".into());
                    }
                    let at = self.pos;
                    self.pos += f.end;
                    self.at = At::List(left - f.end);
                    let value = &self.buf[at + f.start..at + f.end];
                    match f.number {
                        1 => return Ok(Some(Part::Metadata(value))),
                        2 => return Ok(Some(Part::Item(value))),
                        _ => {}
                    }
                }
            }
        }
    }

    pub fn finish(&self) -> Result<(), String> {
        match self.at {
            At::Envelope if self.seen_list && self.pos == self.buf.len() => Ok(()),
            At::Envelope if self.pos == self.buf.len() => Err("the answer holds no list".into()),
            _ => Err("the answer ended before the list did".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, PartialEq, Message)]
    struct TypeMeta {
        #[prost(bytes = "vec", tag = "1")]
        api_version: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        kind: Vec<u8>,
    }

    /// `runtime.Unknown`, as the server writes it around every object.
    #[derive(Clone, PartialEq, Message)]
    struct Unknown {
        #[prost(message, optional, tag = "1")]
        type_meta: Option<TypeMeta>,
        #[prost(bytes = "vec", tag = "2")]
        raw: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        content_encoding: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        content_type: Vec<u8>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct IpAddressList {
        #[prost(message, optional, tag = "1")]
        metadata: Option<ListMeta>,
        #[prost(message, repeated, tag = "2")]
        items: Vec<IpAddress>,
    }

    fn answer(list: &IpAddressList) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: "networking.k8s.io/v1".into(),
                kind: "IPAddressList".into(),
            }),
            raw: list.encode_to_vec(),
            content_encoding: Vec::new(),
            content_type: MEDIA_TYPE.into(),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    /// `created: None` is how Kubernetes writes the zero time: an empty message.
    fn ip_address(name: &str, parent: Option<&[u8]>, created: Option<i64>) -> IpAddress {
        IpAddress {
            metadata: Some(ObjectMeta {
                name: name.into(),
                creation_timestamp: Some(Time { seconds: created }),
                labels: [(wire::MANAGED_BY_LABEL.to_owned(), "x".to_owned())].into(),
                ..Default::default()
            }),
            spec: Some(IpAddressSpec {
                parent_ref: parent.map(|p| ParentReference {
                    resource: "services".into(),
                    namespace: "ns".into(),
                    name: p.into(),
                    ..Default::default()
                }),
            }),
        }
    }

    /// Every part, read from the answer cut at `cuts`.
    type Parts = (Vec<Vec<u8>>, Vec<Vec<u8>>);

    fn read(body: &[u8], cuts: &[usize]) -> Result<Parts, String> {
        let mut reader = ProtoReader::default();
        let (mut meta, mut items) = (Vec::new(), Vec::new());
        let mut at = 0;
        for end in cuts.iter().map(|&c| c.min(body.len())).chain([body.len()]) {
            reader.feed(&body[at..end.max(at)]);
            at = end.max(at);
            while let Some(p) = reader.next_part()? {
                match p {
                    Part::Metadata(b) => meta.push(b.to_vec()),
                    Part::Item(b) => items.push(b.to_vec()),
                }
            }
        }
        reader.finish()?;
        Ok((meta, items))
    }

    #[test]
    fn converts_an_ip_address_as_its_json_would() {
        let bytes = ip_address("10.0.0.1", Some(b"web"), Some(1_764_000_000)).encode_to_vec();
        let w = wire::WireIpAddress::from_protobuf(&bytes).unwrap();
        let from_json: wire::WireIpAddress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "10.0.0.1", "creationTimestamp": "2025-11-24T16:00:00Z",
                         "labels": {"ipaddress.kubernetes.io/managed-by": "x"}},
            "spec": {"parentRef": {"resource": "services", "namespace": "ns", "name": "web"}}
        }))
        .unwrap();
        assert_eq!(w.into_model().unwrap(), from_json.into_model().unwrap());
        // An empty time is how Kubernetes writes "no time"; the epoch is a time like any other.
        let model = |created| {
            let bytes = ip_address("10.0.0.2", None, created).encode_to_vec();
            wire::WireIpAddress::from_protobuf(&bytes)
                .unwrap()
                .into_model()
                .unwrap()
        };
        assert_eq!((model(None).created, model(None).parent), (None, None));
        assert_eq!(model(Some(0)).created, Some(std::time::UNIX_EPOCH));
        assert_eq!(Time { seconds: Some(0) }.encode_to_vec(), [0x08, 0x00]);
    }

    /// Go's JSON encoder writes each byte that is not UTF-8 as U+FFFD (`encodeState.string`), and
    /// the server's JSON is the oracle: tests/upstream.rs checks the same against a real one.
    #[test]
    fn reads_text_that_is_not_utf8_as_the_servers_json_writes_it() {
        let bytes = ip_address("10.0.0.3", Some(b"by-\xffhand\xe2\x82"), Some(1)).encode_to_vec();
        let parent = wire::WireIpAddress::from_protobuf(&bytes)
            .unwrap()
            .spec
            .parent_ref
            .unwrap();
        assert_eq!(parent.name, "by-\u{fffd}hand\u{fffd}\u{fffd}");
        assert_eq!(text(b"\xf0\x9f\x92\x96 ok".to_vec()), "\u{1f496} ok");
        assert_eq!(text(b"\xc3".to_vec()), "\u{fffd}");
    }

    #[test]
    fn refuses_malformed_fields() {
        // A tenth varint byte above 1 would be bits past the 64th.
        assert!(varint(&[[0x80; 9].as_slice(), &[0x02]].concat()).is_err());
        assert_eq!(
            varint(&[[0xff; 9].as_slice(), &[0x01]].concat()),
            Ok(Some((u64::MAX, 10)))
        );
        let list = |raw: &[u8]| {
            let unknown = Unknown {
                raw: raw.to_vec(),
                ..Default::default()
            };
            read(&[MAGIC, &unknown.encode_to_vec()].concat(), &[])
        };
        assert_eq!(list(&[0x02, 0x00]).unwrap_err(), "a field numbered 0");
        assert_eq!(
            list(&[0x10, 0x05]).unwrap_err(),
            "the list's metadata or an item is not a message"
        );
    }

    #[test]
    fn reads_a_failure_status() {
        let status = Status {
            message: "too old".into(),
            reason: "Expired".into(),
            code: 410,
        };
        let list = IpAddressList {
            items: vec![ip_address("10.0.0.1", None, Some(1))],
            ..Default::default()
        };
        assert!(super::status(&answer(&list)).is_none());
        let unknown = Unknown {
            raw: status.encode_to_vec(),
            ..Default::default()
        };
        let s = super::status(&[MAGIC, &unknown.encode_to_vec()].concat()).unwrap();
        assert_eq!(
            (s.code, s.reason.as_str(), s.message.as_str()),
            (410, "Expired", "too old")
        );
        assert!(super::status(b"{\"kind\":\"Status\"}").is_none());
    }

    #[test]
    fn refuses_what_is_not_a_whole_list() {
        let list = IpAddressList {
            metadata: Some(ListMeta::default()),
            items: vec![ip_address("10.0.0.1", None, Some(1))],
        };
        let body = answer(&list);
        assert!(read(&body, &[]).is_ok());
        assert_eq!(
            read(&body[..body.len() - 1], &[]).unwrap_err(),
            "the answer ended before the list did"
        );
        assert_eq!(
            read(b"{\"items\": []}", &[]).unwrap_err(),
            "the answer is not protobuf"
        );
        assert_eq!(read(MAGIC, &[]).unwrap_err(), "the answer holds no list");
        let twice = [body.clone(), body[MAGIC.len()..].to_vec()].concat();
        assert_eq!(read(&twice, &[]).unwrap_err(), "the answer holds two lists");
        // A list whose item claims more bytes than the list holds.
        let mut raw = list.encode_to_vec();
        raw.truncate(raw.len() - 1);
        let cut = Unknown {
            raw,
            ..Default::default()
        };
        let body = [MAGIC, &cut.encode_to_vec(), &[0x1a, 0]].concat();
        assert_eq!(
            read(&body, &[]).unwrap_err(),
            "a field of the list goes past the list's end"
        );
    }

    proptest! {
        /// Cut anywhere, the reader hands out exactly the list's metadata and items, in order.
        #[test]
        fn hands_out_each_item_wherever_the_answer_is_cut(
            names in proptest::collection::vec("[0-9a-f:.]{0,40}", 0..20),
            token in "[a-zA-Z0-9=]{0,30}",
            mut cuts in proptest::collection::vec(0usize..4000, 0..12),
        ) {
            cuts.sort_unstable();
            let meta = ListMeta { resource_version: "7".into(), continue_token: token.into_bytes() };
            let list = IpAddressList {
                metadata: Some(meta.clone()),
                items: names.iter().map(|n| ip_address(n, Some(n.as_bytes()), Some(1))).collect(),
            };
            let (metas, items) = read(&answer(&list), &cuts).unwrap();
            prop_assert_eq!(metas, vec![meta.encode_to_vec()]);
            prop_assert_eq!(items, list.items.iter().map(Message::encode_to_vec).collect::<Vec<_>>());
        }

        /// No bytes make it panic.
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
            let body = [MAGIC, &body].concat();
            let _ = read(&body, &[cut]);
        }
    }
}
