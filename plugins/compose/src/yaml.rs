//! A small positioned YAML tree built from yaml-rust2's event parser.
//!
//! yaml-rust2's own `Yaml` loader drops positions and lets duplicate keys
//! overwrite each other; the compose parser needs both the `line:col` of every
//! key and value and an error for duplicates, so it builds this tree instead.

use yaml_rust2::Event;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::{Error, Pos};

/// Deeper nesting than this is rejected: compose needs at most ~5 levels, and
/// a bound keeps recursive drops of hostile input off the stack limit.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>, Pos),
    Map(Vec<Entry>, Pos),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    /// Written quoted or as a block scalar: never null, bool or number.
    pub quoted: bool,
    pub at: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_at: Pos,
    pub value: Node,
}

impl Scalar {
    /// YAML 1.2 core-schema null (`key:` with nothing after it parses as `~`).
    pub fn is_null(&self) -> bool {
        !self.quoted && matches!(self.text.as_str(), "~" | "null" | "Null" | "NULL" | "")
    }
}

impl Node {
    pub fn at(&self) -> Pos {
        match self {
            Node::Scalar(s) => s.at,
            Node::Seq(_, at) | Node::Map(_, at) => *at,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.is_null())
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(s) if s.is_null() => "nothing (null)",
            Node::Scalar(_) => "a scalar",
            Node::Seq(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }
}

/// yaml-rust2 markers have a 1-based line and a 0-based column.
fn pos(m: Marker) -> Pos {
    Pos {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col()).unwrap_or(u32::MAX).saturating_add(1),
    }
}

enum Frame {
    Seq(Vec<Node>, Pos),
    Map {
        entries: Vec<Entry>,
        at: Pos,
        key: Option<(String, Pos)>,
    },
}

struct Builder<'a> {
    file: &'a str,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    error: Option<Error>,
}

impl Builder<'_> {
    fn fail(&mut self, at: Pos, message: String, hint: Option<&str>) {
        if self.error.is_none() {
            self.error = Some(Error::new(self.file, Some(at), message, hint));
        }
    }

    /// Anchors, aliases and tags are outside the subset: rejecting them keeps
    /// every value's position its own (an alias would point at the anchor).
    fn check_plain(
        &mut self,
        anchor: usize,
        tag: Option<&yaml_rust2::parser::Tag>,
        at: Pos,
    ) -> bool {
        if anchor != 0 {
            self.fail(
                at,
                "YAML anchors (`&name`) are not supported".into(),
                Some("write the value out in each place"),
            );
            return false;
        }
        if let Some(tag) = tag {
            self.fail(
                at,
                format!("YAML tags are not supported (found tag `{}`)", tag.suffix),
                Some("remove the tag; quote the value if it must be a string"),
            );
            return false;
        }
        true
    }

    fn push_frame(&mut self, frame: Frame, at: Pos) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(
                at,
                format!("YAML nested deeper than {MAX_DEPTH} levels"),
                None,
            );
            return;
        }
        self.stack.push(frame);
    }

    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((key, key_at)) => entries.push(Entry {
                    key,
                    key_at,
                    value: node,
                }),
                None => {
                    let Node::Scalar(s) = node else {
                        let at = node.at();
                        self.fail(at, "mapping keys must be plain strings".into(), None);
                        return;
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == s.text) {
                        let first = first.key_at;
                        self.fail(
                            s.at,
                            format!(
                                "duplicate key `{}` (first at line {}, column {})",
                                s.text, first.line, first.col
                            ),
                            None,
                        );
                        return;
                    }
                    *key = Some((s.text, s.at));
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = pos(mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        at,
                        "more than one YAML document (`---`)".into(),
                        Some("a compose file is one document"),
                    );
                }
            }
            Event::Alias(_) => self.fail(
                at,
                "YAML aliases (`*name`) are not supported".into(),
                Some("write the value out in each place"),
            ),
            Event::Scalar(text, style, anchor, tag) => {
                if self.check_plain(anchor, tag.as_ref(), at) {
                    let quoted = style != TScalarStyle::Plain;
                    self.add(Node::Scalar(Scalar { text, quoted, at }));
                }
            }
            Event::SequenceStart(anchor, tag) => {
                if self.check_plain(anchor, tag.as_ref(), at) {
                    self.push_frame(Frame::Seq(Vec::new(), at), at);
                }
            }
            Event::MappingStart(anchor, tag) => {
                if self.check_plain(anchor, tag.as_ref(), at) {
                    let frame = Frame::Map {
                        entries: Vec::new(),
                        at,
                        key: None,
                    };
                    self.push_frame(frame, at);
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(items, at)) => Node::Seq(items, at),
                    Some(Frame::Map { entries, at, .. }) => {
                        // A block mapping's start marker sits one column past its
                        // first key; a flow mapping's sits on `{`. The earlier of
                        // the two is where the mapping visibly starts.
                        let at = entries
                            .first()
                            .map(|e| e.key_at)
                            .filter(|k| (k.line, k.col) < (at.line, at.col))
                            .unwrap_or(at);
                        Node::Map(entries, at)
                    }
                    None => return,
                };
                self.add(node);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// Parses one YAML document; `Ok(None)` for an empty file.
pub(crate) fn load(text: &str, file: &str) -> Result<Option<Node>, Error> {
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        root: None,
        documents: 0,
        error: None,
    };
    let result = Parser::new_from_str(text).load(&mut builder, true);
    if let Some(error) = builder.error {
        return Err(error);
    }
    if let Err(e) = result {
        return Err(Error::new(
            file,
            Some(pos(*e.marker())),
            format!("invalid YAML: {}", e.info()),
            None,
        ));
    }
    Ok(builder.root)
}
