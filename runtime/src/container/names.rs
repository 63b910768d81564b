//! Docker-style generated names: `adjective_surname`.

/// Adjectives, as in Docker's name generator (a short selection).
const ADJECTIVES: [&str; 32] = [
    "admiring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "charming",
    "clever",
    "cool",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "festive",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "nifty",
    "quirky",
    "serene",
    "zen",
];

/// Surnames of scientists and engineers, as in Docker's generator.
const SURNAMES: [&str; 32] = [
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "feynman",
    "galileo",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "liskov",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
];

/// A name from `seed` (random bytes); `attempt` > 0 appends a digit, as Docker does on a clash.
pub fn generate_name(seed: &[u8], attempt: u32) -> String {
    let pick = |i: usize| seed.get(i).copied().unwrap_or(0) as usize;
    let adjective = ADJECTIVES[pick(0) % ADJECTIVES.len()];
    let surname = SURNAMES[pick(1) % SURNAMES.len()];
    if attempt == 0 {
        format!("{adjective}_{surname}")
    } else {
        format!("{adjective}_{surname}{}", pick(2 + attempt as usize) % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_dockers() {
        let name = generate_name(&[1, 2, 3, 4], 0);
        assert_eq!(name, "affectionate_bohr");
        assert!(super::super::is_valid_name(&name));
        assert!(generate_name(&[1, 2, 3, 4, 5], 1).starts_with("affectionate_bohr"));
    }
}
