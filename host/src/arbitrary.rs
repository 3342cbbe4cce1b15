//! Deterministic arbitrary input for the fuzz-style unit tests of the decoders (FastCGI records,
//! HTTP heads, request bodies): the same sequence on every run, so a failure reproduces.

/// A xorshift64 generator of test input.
pub(crate) struct Arbitrary(u64);

impl Arbitrary {
    /// A generator with a fixed seed.
    pub(crate) fn new() -> Self {
        Self(0x2545_F491_4F6C_DD1D)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Up to `max_len` arbitrary bytes.
    pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| (self.next() >> 24) as u8).collect()
    }

    /// Up to `max_tokens` pieces, each one of `tokens` or now and then an arbitrary byte: input
    /// close enough to a grammar to get past its first checks.
    pub(crate) fn tokens(&mut self, tokens: &[&str], max_tokens: usize) -> Vec<u8> {
        let count = self.below(max_tokens + 1);
        let mut out = Vec::new();
        for _ in 0..count {
            match self.below(tokens.len() + 1) {
                i if i < tokens.len() => out.extend_from_slice(tokens[i].as_bytes()),
                _ => out.push((self.next() >> 24) as u8),
            }
        }
        out
    }
}
