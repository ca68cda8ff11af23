//! Arbitrary inputs for robustness tests: deterministic (seeded) random strings built from
//! the characters parsers trip over, and random mutations of valid samples. Every parser
//! that reads what people or peers send must answer them with a value or an error — never a
//! panic. These run in every `cargo test`; `fuzz/` runs the same parsers under libFuzzer.

/// A small xorshift generator: deterministic, so a failure names its seed.
#[derive(Debug, Clone)]
pub(crate) struct Inputs(u64);

const PIECES: &[&str] = &[
    "a",
    "Z",
    "0",
    "9",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "=",
    "\"",
    "'",
    "`",
    "\\",
    "/",
    "-",
    "_",
    ".",
    ",",
    ":",
    ";",
    "@",
    "<",
    ">",
    "<@U1>",
    "&",
    "%",
    "*",
    "é",
    "ß",
    "€",
    "😀",
    "\u{0}",
    "\u{202e}",
    "REQ-",
    "20261127",
    "-00001",
    "cn=",
    "why=",
    "san=",
    "days=",
    "request",
    "status",
    "approve",
    "revoke",
    "-----BEGIN CERTIFICATE REQUEST-----",
    "-----END CERTIFICATE REQUEST-----",
    "MIIC",
    "AAAA",
    "====",
    "<html>",
    "</html>",
    "Disposition message:",
    "\t\t",
    "certnew.cer?ReqID=",
    "Certificate Issued",
    "Certificate Pending",
    "denied",
    "0x80094800",
    "&amp;",
    "ReqID=12&",
];

impl Inputs {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64).max(1)).unwrap_or(0)
    }

    /// A random string of up to `pieces` pieces.
    pub(crate) fn text(&mut self, pieces: usize) -> String {
        let n = self.below(pieces + 1);
        (0..n).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }

    /// `sample` with a few random cuts, insertions and byte flips (kept valid UTF-8).
    pub(crate) fn mutate(&mut self, sample: &str) -> String {
        let mut chars: Vec<char> = sample.chars().collect();
        for _ in 0..=self.below(4) {
            if chars.is_empty() {
                break;
            }
            let at = self.below(chars.len());
            match self.below(4) {
                0 => {
                    let end = (at + self.below(40)).min(chars.len());
                    chars.drain(at..end);
                }
                1 => {
                    let piece = PIECES[self.below(PIECES.len())];
                    for (i, c) in piece.chars().enumerate() {
                        chars.insert((at + i).min(chars.len()), c);
                    }
                }
                2 => chars[at] = char::from(u8::try_from(self.below(128)).unwrap_or(b'x')),
                _ => chars.truncate(at),
            }
        }
        chars.into_iter().collect()
    }
}
