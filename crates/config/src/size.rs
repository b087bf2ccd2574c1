//! Sizes in bytes as people write them (`512MiB`, `2GiB`, `800MB`), read
//! the same way from a flag, the environment and the file.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::error::ConfigError;

/// A number of bytes. Parsed from a whole number and an optional unit:
/// none or `B` is bytes, `KB` `MB` `GB` `TB` are powers of 1000, `KiB`
/// `MiB` `GiB` `TiB` powers of 1024 (units in any case, a space before
/// the unit allowed). Shown with the largest unit that is exact, so that
/// what is shown parses back to the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;

/// The units, each with its factor, largest first: a size is shown with
/// the first that divides it.
const UNITS: [(&str, u64); 9] = [
    ("TiB", MIB * MIB),
    ("TB", 1_000_000_000_000),
    ("GiB", MIB * KIB),
    ("GB", 1_000_000_000),
    ("MiB", MIB),
    ("MB", 1_000_000),
    ("KiB", KIB),
    ("KB", 1_000),
    ("B", 1),
];

impl ByteSize {
    pub const fn from_bytes(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<ByteSize, ConfigError> {
        let not_a_size = || ConfigError::NotASize {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        if number.is_empty() {
            return Err(not_a_size());
        }
        let unit = unit.trim_start();
        let factor = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|&(_, factor)| factor)
                .ok_or_else(not_a_size)?
        };
        // Digits only: what does not fit in u64 is too large, not malformed.
        let too_large = || ConfigError::SizeTooLarge {
            text: text.to_owned(),
        };
        number
            .parse::<u64>()
            .map_err(|_| too_large())?
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(too_large)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exact = UNITS
            .iter()
            .filter(|&&(_, factor)| factor > 1)
            .find(|&&(_, factor)| self.0 != 0 && self.0.is_multiple_of(factor));
        match exact {
            Some((name, factor)) => write!(f, "{}{name}", self.0 / factor),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A string as [`FromStr`] takes it, or a TOML integer of bytes.
fn deserialize_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = ByteSize;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"512MiB\", \"2GiB\" or \"800MB\", or a number of bytes")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
            text.parse().map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
            Ok(ByteSize(bytes))
        }

        fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
            u64::try_from(bytes).map(ByteSize).map_err(|_| {
                E::custom(ConfigError::NotASize {
                    text: bytes.to_string(),
                })
            })
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        deserialize_size(deserializer)
    }
}

/// What the fold keeps resident, sled's page cache included
/// (`fold.memory_budget`, `--memory-budget`, `IDFOLD_FOLD_MEMORY_BUDGET`):
/// a [`ByteSize`] of at least [`MemoryBudget::FLOOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryBudget(ByteSize);

impl MemoryBudget {
    /// Below this a batch's own working set no longer fits beside a cache
    /// worth having, and the fold would spend its time re-reading sled.
    pub const FLOOR: ByteSize = ByteSize(16 * MIB);

    /// The smallest budget there is: [`Self::FLOOR`].
    pub const MIN: MemoryBudget = MemoryBudget(Self::FLOOR);

    /// The budget of `bytes`, refused below [`Self::FLOOR`].
    pub fn new(size: ByteSize) -> Result<MemoryBudget, ConfigError> {
        if size < Self::FLOOR {
            return Err(ConfigError::BelowFloor {
                what: "the fold's memory budget",
                size,
                floor: Self::FLOOR,
            });
        }
        Ok(MemoryBudget(size))
    }

    pub const fn bytes(self) -> u64 {
        self.0.bytes()
    }
}

impl FromStr for MemoryBudget {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<MemoryBudget, ConfigError> {
        MemoryBudget::new(text.parse()?)
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for MemoryBudget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MemoryBudget, D::Error> {
        MemoryBudget::new(deserialize_size(deserializer)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn size(text: &str) -> Result<u64, String> {
        text.parse::<ByteSize>()
            .map(ByteSize::bytes)
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn each_unit_has_its_factor() {
        for (text, bytes) in [
            ("0", 0),
            ("536870912", 512 * MIB),
            ("17B", 17),
            ("512MiB", 512 * MIB),
            ("2GiB", 2048 * MIB),
            ("1TiB", 1024 * 1024 * MIB),
            ("65536KiB", 64 * MIB),
            ("800MB", 800_000_000),
            ("3KB", 3_000),
            ("4GB", 4_000_000_000),
            ("1TB", 1_000_000_000_000),
        ] {
            assert_eq!(size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn units_take_any_case_and_a_space_and_the_value_may_be_padded() {
        for text in ["512mib", "512MIB", "512 MiB", " 512MiB\n", "512   mIb"] {
            assert_eq!(size(text), Ok(512 * MIB), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_not_a_size() {
        for text in [
            "",
            " ",
            "MiB",
            "512M",
            "512 G",
            "512MiBs",
            "1.5GiB",
            "-5",
            "+5",
            "5 MiB extra",
            "0x10",
            "512 Mi B",
            "½GiB",
            "512_000",
            "1e9",
        ] {
            assert_eq!(size(text), Err("not_a_size".to_owned()), "{text:?}");
        }
    }

    #[test]
    fn what_does_not_fit_in_64_bits_is_too_large() {
        for text in [
            "18446744073709551616",
            "16777216TiB",
            "99999999999999999999999MiB",
        ] {
            assert_eq!(size(text), Err("size_too_large".to_owned()), "{text:?}");
        }
        assert_eq!(size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn a_budget_below_the_floor_is_refused_saying_the_floor() {
        assert_eq!(MemoryBudget::FLOOR.bytes(), 16 * MIB);
        assert_eq!(
            "16MiB"
                .parse::<MemoryBudget>()
                .map(MemoryBudget::bytes)
                .ok(),
            Some(16 * MIB)
        );
        for text in ["3", "0", "16777215", "15MiB", "16MB"] {
            let error = text.parse::<MemoryBudget>().err();
            assert_eq!(error.as_ref().map(ConfigError::code), Some("below_floor"));
            let message = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains("memory budget") && message.contains("at least 16MiB"),
                "{message}"
            );
        }
        let malformed = "lots".parse::<MemoryBudget>().err();
        assert_eq!(
            malformed.as_ref().map(ConfigError::code),
            Some("not_a_size")
        );
    }

    #[test]
    fn shown_with_the_largest_exact_unit() {
        for (bytes, shown) in [
            (0, "0"),
            (17, "17"),
            (512 * MIB, "512MiB"),
            (2048 * MIB, "2GiB"),
            (800_000_000, "800MB"),
            (1_536 * KIB, "1536KiB"),
            (1_000, "1KB"),
            (1_025, "1025"),
            (2_000 * KIB, "2000KiB"),
        ] {
            assert_eq!(ByteSize::from_bytes(bytes).to_string(), shown);
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct File {
        budget: MemoryBudget,
    }

    fn from_toml(value: &str) -> Result<u64, String> {
        toml::from_str::<File>(&format!("budget = {value}"))
            .map(|f| f.budget.bytes())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_takes_a_string_or_an_integer_of_bytes() {
        assert_eq!(from_toml("\"64MiB\""), Ok(64 * MIB));
        assert_eq!(from_toml("67108864"), Ok(64 * MIB));
        for (value, said) in [
            ("3", "must be at least 16MiB"),
            ("-67108864", "not a size"),
            ("\"64 megs\"", "not a size"),
            ("6.4e7", "a size such as"),
            ("true", "a size such as"),
        ] {
            let error = from_toml(value).err().unwrap_or_default();
            assert!(error.contains(said), "{value}: {error}");
        }
    }

    proptest! {
        #[test]
        fn what_is_shown_parses_back_to_the_same_size(bytes in any::<u64>()) {
            let shown = ByteSize::from_bytes(bytes).to_string();
            prop_assert_eq!(size(&shown), Ok(bytes));
        }

        #[test]
        fn every_unit_multiplies_or_is_too_large(n in any::<u32>(), unit in 0..UNITS.len()) {
            let (name, factor) = UNITS[unit];
            let expected = u64::from(n)
                .checked_mul(factor)
                .ok_or_else(|| "size_too_large".to_owned());
            prop_assert_eq!(size(&format!("{n}{name}")), expected);
        }

        #[test]
        fn no_text_makes_it_panic(text in ".{0,24}") {
            let _ = text.parse::<MemoryBudget>();
        }
    }
}
