//! CPython's `random.Random`, bit for bit, for the parts lm-eval uses.
//!
//! lm-eval draws few-shot examples with `random.Random(seed).sample(pool, n)` and bootstraps
//! standard errors with `random.Random(i).choices(xs, k=n)`. To render the same prompts and get
//! the same stderrs, rubric reproduces the Mersenne Twister (MT19937, seeded through
//! `init_by_array` as CPython's `random_seed` does for an int), `getrandbits`, `_randbelow`,
//! `random()`, `sample` (both of CPython's algorithms, chosen by the same set-size rule) and
//! `choices`. Checked against CPython 3.11 by `tests/golden/pyrandom.json`.

const N: usize = 624;
const M: usize = 397;

/// A Mersenne Twister seeded the way `random.Random(seed)` seeds it for an `int`.
#[derive(Clone)]
pub(crate) struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)`: the absolute value of the seed, split in 32-bit words
    /// (least significant first), goes through `init_by_array`.
    pub fn new(seed: i64) -> Self {
        let mut n = seed.unsigned_abs();
        let mut key = Vec::new();
        while n > 0 {
            key.push(n as u32);
            n >>= 32;
        }
        if key.is_empty() {
            key.push(0);
        }
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1812433253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19650218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1664525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1566083941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for k in 0..N {
            let y = (self.mt[k] & UPPER) | (self.mt[(k + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// `genrand_uint32`: the next 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random.random()`: 53 random bits as a float in [0, 1).
    #[cfg(test)]
    pub(crate) fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)
    }

    /// `getrandbits(k)` for `k <= 64` (words are filled least significant first, as CPython).
    pub(crate) fn getrandbits(&mut self, k: u32) -> u64 {
        match k {
            0 => 0,
            1..=32 => (self.next_u32() >> (32 - k)) as u64,
            _ => {
                let lo = self.next_u32() as u64;
                let hi = (self.next_u32() >> (64 - k)) as u64;
                lo | (hi << 32)
            }
        }
    }

    /// `_randbelow_with_getrandbits(n)`: uniform in `0..n` by rejection sampling.
    pub(crate) fn randbelow(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `random.sample(range(n), k)`: `k` distinct indices, in CPython's order. Panics if `k > n`
    /// (callers check, as Python raises `ValueError`).
    pub(crate) fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population");
        let mut setsize = 21usize;
        if k > 5 {
            let exp = ((k * 3) as f64).ln() / 4f64.ln();
            setsize += 4usize.pow(exp.ceil() as u32);
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow(n - i);
                result.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n);
                while selected.contains(&j) {
                    j = self.randbelow(n);
                }
                selected.insert(j);
                result.push(j);
            }
        }
        result
    }

    /// `random.choices(range(n), k=k)` without weights: `floor(random() * n)` per draw.
    #[cfg(test)]
    pub(crate) fn choices_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        (0..k)
            .map(|_| (self.random() * n as f64) as usize)
            .collect()
    }

    /// `random.shuffle(x)`: Fisher-Yates from the end, with `_randbelow(i + 1)`.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // python3 -c "import random; r=random.Random(1234); print([r.getrandbits(32) for _ in range(3)])"
    #[test]
    fn first_words_for_seed_1234() {
        let mut r = PyRandom::new(1234);
        let got: Vec<u64> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(got, vec![4150886329, 3342196574, 1892932127]);
    }

    // python3: random.Random(1234).sample(range(7473), 6); random.Random(0).sample(range(10), 6)
    #[test]
    fn sample_both_algorithms() {
        assert_eq!(
            PyRandom::new(1234).sample_indices(7473, 6),
            vec![6374, 3610, 957, 61, 742, 7462]
        );
        assert_eq!(
            PyRandom::new(0).sample_indices(10, 6),
            vec![6, 9, 0, 2, 4, 3]
        );
    }

    // python3: random.Random(5).choices(range(10), k=5); l = list(range(10)); random.Random(3).shuffle(l)
    #[test]
    fn choices_and_shuffle() {
        assert_eq!(PyRandom::new(5).choices_indices(10, 5), vec![6, 7, 7, 9, 7]);
        let mut l: Vec<usize> = (0..10).collect();
        PyRandom::new(3).shuffle(&mut l);
        assert_eq!(l, vec![1, 5, 6, 0, 9, 4, 7, 2, 8, 3]);
    }

    // python3 -c "import random; print(random.Random(42).random())"
    #[test]
    fn random_float_for_seed_42() {
        assert_eq!(PyRandom::new(42).random(), 0.6394267984578837);
    }
}
