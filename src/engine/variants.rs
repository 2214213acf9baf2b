//! Experiments: the ranking variants every index carries, chosen by name or
//! by a user id hashed deterministically into one of them.
//!
//! - `served`: what the build's serving plan chose for each kind of context
//!   (the learned ranker, or the weighted fusion of the retrievers where
//!   that did better on held-out requests);
//! - `ranker`: the index's ranker for every kind of context (the fixed
//!   placeholder on an index built without logs);
//! - `fusion`: the plan's weighted reciprocal-rank fusion for every kind.
//!
//! A user id goes to `VARIANTS[fnv1a64(id) % 3]`: the same user gets the
//! same variant on every replica and after every restart, and this mapping
//! is part of the crate's contract (it changes only with a major version).

use crate::error::{Error, Result};
use crate::request::Request;

/// The variants every index carries, in the order user ids are hashed into.
pub const VARIANTS: [&str; 3] = ["served", "ranker", "fusion"];

/// How one request is ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    Served,
    Ranker,
    Fusion,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Served => VARIANTS[0],
            Variant::Ranker => VARIANTS[1],
            Variant::Fusion => VARIANTS[2],
        }
    }

    fn by_index(i: usize) -> Variant {
        match i % VARIANTS.len() {
            0 => Variant::Served,
            1 => Variant::Ranker,
            _ => Variant::Fusion,
        }
    }
}

/// FNV-1a, 64 bits: small, stable across platforms and versions (unlike
/// the standard library's hasher), and spreads short ids well enough.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The variant `req` asks for (by name, else by its user id) and the name
/// the response reports; `(Served, None)` when it names neither.
pub(crate) fn choose(req: &Request) -> Result<(Variant, Option<&'static str>)> {
    let variant = match (&req.variant, &req.user) {
        (Some(name), _) => (0..VARIANTS.len())
            .find(|&i| VARIANTS[i] == name)
            .map(Variant::by_index)
            .ok_or_else(|| Error::InvalidRequest(format!("variant `{name}` is not one this index carries ({})", VARIANTS.join(", "))))?,
        (None, Some(user)) => Variant::by_index((fnv1a64(user.as_bytes()) % VARIANTS.len() as u64) as usize),
        (None, None) => return Ok((Variant::Served, None)),
    };
    Ok((variant, Some(variant.name())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Context;

    #[test]
    fn fnv1a_matches_its_reference_values() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn users_spread_over_every_variant_and_keep_theirs() {
        let req = |user: String| Request::new(Context::search("x")).user(user);
        let mut counts = [0usize; 3];
        for u in 0..3000 {
            let (v, name) = choose(&req(format!("usr-{u:05}"))).unwrap();
            counts[VARIANTS.iter().position(|n| Some(*n) == name).unwrap()] += 1;
            assert_eq!(choose(&req(format!("usr-{u:05}"))).unwrap().0, v, "deterministic");
        }
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
        let named = Request::new(Context::search("x")).user("usr-1").variant("fusion");
        assert_eq!(
            choose(&named).unwrap(),
            (Variant::Fusion, Some("fusion")),
            "a name wins over the user"
        );
        assert_eq!(choose(&Request::new(Context::search("x"))).unwrap(), (Variant::Served, None));
        assert!(
            matches!(choose(&Request::new(Context::search("x")).variant("b")), Err(Error::InvalidRequest(m)) if m.contains("served, ranker, fusion"))
        );
    }
}
