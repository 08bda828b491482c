//! The real clock and randomness behind the `Clock` and `RandomSource` ports.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

use crate::domain::ports::{Clock, RandomSource};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

pub struct ThreadRandom;

impl RandomSource for ThreadRandom {
    fn unit(&self) -> f64 {
        rand::rng().random::<f64>()
    }

    fn secret_bytes(&self) -> [u8; 32] {
        // ThreadRng is a CSPRNG (ChaCha, reseeded from the OS).
        rand::rng().random()
    }
}
