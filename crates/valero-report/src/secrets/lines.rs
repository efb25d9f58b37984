//! Masking across line boundaries: a secret written in pieces on
//! consecutive lines of one stream (`part: hun`, `ter2 :rest`) is still a
//! secret. Each piece is masked (`part: ***`, `*** :rest`).
//!
//! [`Masker::mask_lines`] does it for text that is complete (captured
//! stdout/stderr); [`HeldLines`] for a stream of lines that arrive one by
//! one (log lines): a line whose end could be the start of a secret is held
//! back until the next line decides, or the stream ends.

use std::ops::Range;

use super::{MASK, Masker};

/// Lines held back at most; past this they are released with the
/// possible start of a secret masked (failing closed).
const MAX_HELD: usize = 64;

impl Masker {
    /// Byte ranges of `text` where a form of a secret occurs: sorted, merged.
    fn ranges(&self, text: &[u8]) -> Vec<Range<usize>> {
        let mut found: Vec<Range<usize>> = Vec::new();
        for p in &self.patterns {
            let p = p.as_bytes();
            let mut i = 0;
            while i + p.len() <= text.len() {
                if text[i..].starts_with(p) {
                    found.push(i..i + p.len());
                    i += p.len();
                } else {
                    i += 1;
                }
            }
        }
        merge(found)
    }

    /// Where the longest suffix of `text` that is a proper prefix of a form
    /// of a secret starts (`text.len()` when there is none).
    fn partial_tail(&self, text: &[u8]) -> usize {
        self.patterns
            .iter()
            .filter_map(|p| {
                (1..p.len())
                    .rev()
                    .find(|&n| text.ends_with(&p.as_bytes()[..n]))
            })
            .max()
            .map_or(text.len(), |n| text.len() - n)
    }

    /// Masks `text` split on `\n` as if the line breaks (and a `\r` before
    /// them) were not there, so a secret cut in two by a line break is
    /// masked in both pieces. With `truncated`, a trailing partial match —
    /// a secret cut by the output cap — is masked too.
    pub fn mask_lines(&self, text: &[u8], truncated: bool) -> Vec<u8> {
        if self.is_empty() {
            return text.to_vec();
        }
        let mut joined = Vec::with_capacity(text.len());
        let mut segments = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let body = line.strip_suffix(b"\r").unwrap_or(line);
            let start = joined.len();
            joined.extend_from_slice(body);
            segments.push((start..joined.len(), &line[body.len()..]));
        }
        let mut masked = self.ranges(&joined);
        if truncated {
            let tail = self.partial_tail(&joined);
            if tail < joined.len() {
                // It can overlap a whole match before it (found by fuzzing).
                masked.push(tail..joined.len());
                masked = merge(masked);
            }
        }
        let mut out = Vec::with_capacity(text.len());
        for (i, (seg, cr)) in segments.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            render(&joined, seg.clone(), &masked, &mut out);
            out.extend_from_slice(cr);
        }
        out
    }
}

/// `ranges` sorted by start, overlapping and touching ones merged.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// Appends `text[seg]` with every part inside a `masked` range replaced by
/// one [`MASK`]. `masked` must be merged (see [`merge`]).
fn render(text: &[u8], seg: Range<usize>, masked: &[Range<usize>], out: &mut Vec<u8>) {
    let mut at = seg.start;
    for r in masked
        .iter()
        .filter(|r| r.start < seg.end && r.end > seg.start)
    {
        // Never behind what is already out, whatever the ranges.
        let from = r.start.max(at);
        out.extend_from_slice(&text[at..from]);
        out.extend_from_slice(MASK.as_bytes());
        at = r.end.min(seg.end);
    }
    out.extend_from_slice(&text[at..seg.end]);
}

/// Lines of one stream on their way out, each with its `T` (level, time…):
/// [`HeldLines::push`] returns the lines that are ready, masked.
#[derive(Debug)]
pub struct HeldLines<T> {
    held: Vec<(T, String)>,
}

impl<T> Default for HeldLines<T> {
    fn default() -> Self {
        HeldLines { held: Vec::new() }
    }
}

impl<T> HeldLines<T> {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Adds a line; returns the lines now ready, masked, in order.
    pub fn push(&mut self, m: &Masker, meta: T, line: String) -> Vec<(T, String)> {
        if m.is_empty() {
            return vec![(meta, line)];
        }
        self.held.push((meta, line));
        let (joined, segments) = self.joined();
        let mut masked = m.ranges(&joined);
        let tail = m.partial_tail(&joined);
        // Hold from the line where the possible secret starts — or where a
        // masked range reaching into it starts, so that range is found
        // whole again next time.
        let hold_from = masked
            .iter()
            .find(|r| r.start < tail && tail < r.end)
            .map_or(tail, |r| r.start);
        let keep = if tail == joined.len() {
            segments.len()
        } else if self.held.len() > MAX_HELD {
            masked.push(tail..joined.len());
            masked = merge(masked);
            segments.len()
        } else {
            segments
                .iter()
                .take_while(|s| s.end <= hold_from && s.end < joined.len())
                .count()
        };
        self.release(keep, &joined, &segments, &masked)
    }

    /// Ends the stream: every held line, masked (a partial match at the very
    /// end is just text: nothing can complete it).
    pub fn finish(&mut self, m: &Masker) -> Vec<(T, String)> {
        let (joined, segments) = self.joined();
        let masked = m.ranges(&joined);
        self.release(segments.len(), &joined, &segments, &masked)
    }

    fn joined(&self) -> (Vec<u8>, Vec<Range<usize>>) {
        let mut joined = Vec::new();
        let mut segments = Vec::with_capacity(self.held.len());
        for (_, line) in &self.held {
            let start = joined.len();
            joined.extend_from_slice(line.as_bytes());
            segments.push(start..joined.len());
        }
        (joined, segments)
    }

    /// Releases the first `n` held lines, masked.
    fn release(
        &mut self,
        n: usize,
        joined: &[u8],
        segments: &[Range<usize>],
        masked: &[Range<usize>],
    ) -> Vec<(T, String)> {
        self.held
            .drain(..n)
            .zip(segments)
            .map(|((meta, _), seg)| {
                let mut out = Vec::with_capacity(seg.len());
                render(joined, seg.clone(), masked, &mut out);
                // Masks replace whole characters: still UTF-8.
                (meta, String::from_utf8_lossy(&out).into_owned())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-pw";

    fn lines(out: Vec<(u32, String)>) -> Vec<String> {
        out.into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn a_secret_split_over_two_lines_is_masked_in_both() {
        let m = Masker::new([SECRET]);
        for i in 1..SECRET.len() {
            let (head, tail) = SECRET.split_at(i);
            let mut h = HeldLines::default();
            assert!(
                h.push(&m, 1, format!("part: {head}")).is_empty(),
                "held at {i}"
            );
            let out = lines(h.push(&m, 2, format!("{tail} :rest")));
            assert_eq!(out, ["part: ***", "*** :rest"], "split at {i}");
            assert!(h.is_empty());

            let text = format!("part: {head}\r\n{tail} :rest\n");
            assert_eq!(
                String::from_utf8(m.mask_lines(text.as_bytes(), false)).unwrap(),
                "part: ***\r\n*** :rest\n"
            );
        }
    }

    #[test]
    fn a_secret_over_many_lines_and_whole_ones_are_masked() {
        let m = Masker::new([SECRET]);
        let mut h = HeldLines::default();
        let mut out = Vec::new();
        for (i, piece) in ["a hun", "te", "r2", "-pw b", SECRET, "plain"]
            .iter()
            .enumerate()
        {
            out.extend(lines(h.push(&m, i as u32, piece.to_string())));
        }
        assert_eq!(out, ["a ***", "***", "***", "*** b", "***", "plain"]);
    }

    #[test]
    fn lines_that_cannot_start_a_secret_pass_at_once() {
        let m = Masker::new([SECRET]);
        let mut h = HeldLines::default();
        assert_eq!(
            lines(h.push(&m, 0, "nothing here".into())),
            ["nothing here"]
        );
        // Held: it ends like the start of the secret, but the stream ends.
        assert!(h.push(&m, 1, "almost hunt".into()).is_empty());
        assert_eq!(lines(h.push(&m, 2, "ed".into())), ["almost hunt", "ed"]);
        assert!(h.push(&m, 3, "x hun".into()).is_empty());
        assert_eq!(lines(h.finish(&m)), ["x hun"]);
        // No secrets: nothing is ever held.
        let none = Masker::new(Vec::<&str>::new());
        assert_eq!(lines(h.push(&none, 4, "hun".into())), ["hun"]);
    }

    #[test]
    fn too_many_held_lines_are_released_masked() {
        let m = Masker::new([SECRET]);
        let mut h = HeldLines::default();
        assert!(h.push(&m, 0, "x hun".into()).is_empty());
        let mut out = Vec::new();
        for i in 0..=MAX_HELD {
            out.extend(lines(h.push(&m, i as u32, String::new())));
        }
        assert_eq!(out.len(), MAX_HELD + 2);
        assert_eq!(out[0], "x ***");
    }

    #[test]
    fn mask_lines_keeps_the_cut_tail_rule() {
        let m = Masker::new([SECRET]);
        assert_eq!(m.mask_lines(b"log: hunt", true), b"log: ***");
        assert_eq!(m.mask_lines(b"log: hunt", false), b"log: hunt");
        assert_eq!(
            m.mask_lines(format!("a{SECRET}b").as_bytes(), false),
            b"a***b"
        );
    }
}
