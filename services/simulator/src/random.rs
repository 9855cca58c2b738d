//! Random numbers for the simulation: SplitMix64. It is tiny, fast even in debug builds
//! (rand's ChaCha-based `StdRng` is slow there, and one is seeded per person and day), and
//! its output is fixed by this file, not by a dependency's version or the platform.

use rand::RngCore;
use rand::rand_core::impls;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        impls::fill_bytes_via_next(self, dst)
    }
}

/// A generator for one combination of inputs (seed, school, person, day...); mixing each
/// part in turn makes nearby inputs give unrelated streams.
pub fn seeded(parts: &[u64]) -> SplitMix64 {
    SplitMix64(parts.iter().fold(0, |h, &part| mix(h ^ part.wrapping_add(GOLDEN_GAMMA))))
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn streams_are_fixed_and_distinct() {
        // SplitMix64's reference output for state 0 (Vigna's splitmix64.c).
        assert_eq!(SplitMix64(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_ne!(seeded(&[1, 2]).next_u64(), seeded(&[2, 1]).next_u64());
        let mut rng = seeded(&[7]);
        let heads = (0..100_000).filter(|_| rng.random_bool(0.3)).count();
        assert!((29_000..31_000).contains(&heads), "{heads}");
    }
}
