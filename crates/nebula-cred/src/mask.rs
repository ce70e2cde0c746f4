//! Masking of injected values in a byte stream (`run`'s view of its child's stdout and
//! stderr): every occurrence of a value becomes [`MASK`].
//!
//! The stream arrives in pieces of any size, so a value may be split across reads. The
//! masker emits at once every byte that cannot be the start of a value and holds back only
//! a tail that is still a proper prefix of some value (at most the longest value's length
//! less one byte) until the next piece or the end of the stream decides it. Nothing is
//! held for time: output that does not end in the beginning of a value is passed on as soon
//! as it is read, so prompts and progress lines show at once. Binary output is bytes like
//! any other. Held bytes and the values are zeroized when the masker is dropped.
//!
//! Occurrences that overlap (one value ending inside another's occurrence, or a value
//! repeated into itself) become one mask, so no part of either is left in clear. Each
//! value is also masked without its surrounding whitespace: a value stored with a trailing
//! line break is usually printed without it.

use zeroize::Zeroizing;

/// What each occurrence of an injected value is replaced with.
pub(crate) const MASK: &[u8] = b"<concealed by nebula-cred>";

/// Replaces values in a stream fed piece by piece.
pub(crate) struct Masker {
    /// The values, non-empty and distinct, longest first (so the first full match at a
    /// position is the longest).
    values: Vec<Zeroizing<Vec<u8>>>,
    /// `starts[b]`: some value begins with byte `b` (a quick skip for the rest).
    starts: [bool; 256],
    /// Bytes read but not yet emitted: the tail that may still become a value.
    pending: Zeroizing<Vec<u8>>,
}

impl Masker {
    /// A masker for `values`; empty values are ignored (they would match everywhere).
    pub(crate) fn new(values: impl IntoIterator<Item = Zeroizing<Vec<u8>>>) -> Self {
        let mut values: Vec<_> = values
            .into_iter()
            .flat_map(|v| {
                // A value stored with surrounding whitespace (a piped `echo`) is often
                // printed without it (`$(…)`, `.trim()`): mask that form too.
                let trimmed = Zeroizing::new(v.trim_ascii().to_vec());
                [v, trimmed]
            })
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.as_slice().cmp(b.as_slice())));
        values.dedup_by(|a, b| a.as_slice() == b.as_slice());
        let mut starts = [false; 256];
        for v in &values {
            starts[usize::from(v[0])] = true;
        }
        Masker {
            values,
            starts,
            pending: Zeroizing::new(Vec::new()),
        }
    }

    /// Takes the next piece of the stream and appends to `out` what can be emitted now.
    pub(crate) fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(piece);
        self.process(out, false);
    }

    /// The stream ended: appends to `out` whatever was held back, masked.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        self.process(out, true);
    }

    /// Bytes held back, waiting for the next piece.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.pending.len()
    }

    fn process(&mut self, out: &mut Vec<u8>, at_end: bool) {
        let buf = &self.pending[..];
        let mut plain_from = 0;
        // The masked region being built: `start..end` covers every occurrence found so far
        // that overlaps or touches the ones before it (one value ending inside another
        // value's occurrence must not leave the other's tail in clear).
        let mut region: Option<(usize, usize)> = None;
        let mut i = 0;
        let mut held = false;
        while i < buf.len() {
            if let Some((start, end)) = region
                && i >= end
            {
                out.extend_from_slice(&buf[plain_from..start]);
                out.extend_from_slice(MASK);
                plain_from = end;
                region = None;
            }
            if !self.starts[usize::from(buf[i])] {
                i += 1;
                continue;
            }
            let rest = &buf[i..];
            let mut full = None;
            let mut may_grow = false;
            for v in &self.values {
                if rest.len() >= v.len() {
                    if full.is_none() && rest.starts_with(v) {
                        full = Some(v.len());
                    }
                } else if v.starts_with(rest) {
                    // A longer value may still complete here once more arrives.
                    may_grow = true;
                }
            }
            if may_grow && !at_end {
                held = true;
                break;
            }
            if let Some(len) = full {
                region = Some(match region {
                    Some((start, end)) => (start, end.max(i + len)),
                    None => (i, i + len),
                });
            }
            i += 1;
        }
        let emit_to = match region {
            // Held inside a region: keep all of it, the next piece may extend it.
            Some((start, _)) if held => start,
            Some((start, end)) => {
                out.extend_from_slice(&buf[plain_from..start]);
                out.extend_from_slice(MASK);
                plain_from = end;
                end.max(i)
            }
            None => i,
        };
        out.extend_from_slice(&buf[plain_from..emit_to.max(plain_from)]);
        self.pending.drain(..emit_to.max(plain_from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(values: &[&[u8]]) -> Masker {
        Masker::new(values.iter().map(|v| Zeroizing::new(v.to_vec())))
    }

    /// Feeds `input` in pieces of `size` bytes and returns everything emitted.
    fn run(m: &mut Masker, input: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in input.chunks(size) {
            m.feed(piece, &mut out);
        }
        m.finish(&mut out);
        out
    }

    fn masked(text: &str) -> String {
        text.replace("{}", std::str::from_utf8(MASK).unwrap())
    }

    #[test]
    fn values_are_masked_whatever_the_piece_size() {
        let input = b"token=hunter2 and again hunter2hunter2, hunter and hunt";
        let expected = masked("token={} and again {}{}, hunter and hunt");
        for size in 1..=input.len() {
            let mut m = masker(&[b"hunter2"]);
            assert_eq!(
                String::from_utf8(run(&mut m, input, size)).unwrap(),
                expected,
                "size {size}"
            );
        }
    }

    #[test]
    fn the_longest_value_wins_and_overlaps_are_left_to_right() {
        for size in 1..=12 {
            let mut m = masker(&[b"ab", b"abcd", b"cd"]);
            assert_eq!(
                String::from_utf8(run(&mut m, b"abcd abc cdab", size)).unwrap(),
                masked("{} {}c {}{}"),
                "size {size}"
            );
        }
        let mut m = masker(&[b"aa"]);
        assert_eq!(run(&mut m, b"aaa", 1), MASK, "overlapping occurrences are one region");
    }

    #[test]
    fn a_value_overlapping_another_does_not_leave_its_tail_in_clear() {
        // "xab" matches first, but "abcdef" starts inside it: both are covered.
        let input = b"<xabcdef> <abcdefx> <xab> <abcd>";
        let expected = masked("<{}> <{}x> <{}> <abcd>");
        for size in 1..=input.len() {
            let mut m = masker(&[b"xab", b"abcdef"]);
            assert_eq!(
                String::from_utf8(run(&mut m, input, size)).unwrap(),
                expected,
                "size {size}"
            );
        }
    }

    #[test]
    fn a_value_is_also_masked_without_its_surrounding_whitespace() {
        let mut m = masker(&[b"  token-1\n"]);
        assert_eq!(
            String::from_utf8(run(&mut m, b"[token-1] [  token-1\n]", 4)).unwrap(),
            masked("[{}] [{}]")
        );
    }

    #[test]
    fn only_a_possible_beginning_of_a_value_is_held() {
        let mut m = masker(&[b"secret"]);
        let mut out = Vec::new();
        m.feed(b"Password: ", &mut out);
        assert_eq!(out, b"Password: ", "nothing held: no value starts here");
        out.clear();
        m.feed(b"line\nsec", &mut out);
        assert_eq!(out, b"line\n");
        assert_eq!(m.held(), 3);
        out.clear();
        m.feed(b"ond", &mut out);
        assert_eq!(out, b"second", "not a value after all: emitted");
        assert_eq!(m.held(), 0);
        out.clear();
        m.feed(b"secre", &mut out);
        m.finish(&mut out);
        assert_eq!(out, b"secre", "a prefix at the end of the stream is not a value");
    }

    #[test]
    fn binary_output_and_binary_values_pass_through() {
        let value: Vec<u8> = vec![0, 0xff, 0xfe, b'\n', 0];
        let mut input: Vec<u8> = (0u8..=255).collect();
        input.extend_from_slice(&value);
        input.extend(0u8..=255);
        let mut expected: Vec<u8> = (0u8..=255).collect();
        expected.extend_from_slice(MASK);
        expected.extend(0u8..=255);
        for size in [1, 2, 3, 7, 4096] {
            let mut m = masker(&[&value]);
            assert_eq!(run(&mut m, &input, size), expected, "size {size}");
        }
    }

    #[test]
    fn empty_and_duplicate_values_are_ignored() {
        let mut m = masker(&[b"", b"x", b"x"]);
        assert_eq!(run(&mut m, b"axb", 1), [b"a", MASK, b"b"].concat());
        let mut m = masker(&[]);
        assert_eq!(run(&mut m, b"anything", 3), b"anything");
    }
}
