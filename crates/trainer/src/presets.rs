//! Named recipes (`--recipe NAME`): a tested combination of training flags
//! that a user types as one. A preset only fills in flags the command line
//! leaves out, so `--recipe strong --seed 3` or `--recipe strong --epochs 30
//! --schedule cosine:30` mean what they say. The flags it sets are recorded
//! like any others (config.json's `recipe`), so a resume compares them; a
//! resumed run passes `--recipe` again as it passes any flag again.
//!
//! A new preset is one entry in [`PRESETS`] (and its evidence in the docs).

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::cli::Cli;

/// A named set of training flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// What `--recipe` takes.
    pub name: &'static str,
    /// One line for `--help` and the docs.
    pub summary: &'static str,
    /// Each flag (its long name, without `--`) and its value.
    pub flags: &'static [(&'static str, &'static str)],
}

/// Every preset `--recipe` knows.
pub const PRESETS: &[Preset] = &[
    Preset { name: "seed", summary: "the seed's recipe: every flag at its default", flags: &[] },
    Preset {
        name: "strong",
        summary: "the seed's affine and Simard's elastic distortions, a cosine learning rate to 0 over 40 epochs, and a moving average of the weights (docs/results/strong/)",
        flags: &[("epochs", "40"), ("augment", "seed+elastic:34,4"), ("schedule", "cosine:40"), ("ema", "0.999")],
    },
    Preset {
        name: "strided",
        summary: "the strided network (Deotte's design) with the seed's affine and the learning rate times 0.9 each epoch for 30 epochs (docs/results/strided/)",
        flags: &[("network", "strided"), ("epochs", "30"), ("schedule", "exponential:0.9")],
    },
    Preset {
        name: "strided-affine",
        summary: "`strided` with the Keras CNNs' continuous affine (affine:10,0.1,0.1) in place of the seed's (docs/results/strided-affine/)",
        flags: &[
            ("network", "strided"),
            ("epochs", "30"),
            ("schedule", "exponential:0.9"),
            ("augment", "affine:10,0.1,0.1"),
        ],
    },
];

/// The preset called `name`.
///
/// # Errors
/// A name no preset has, listing those there are.
pub fn by_name(name: &str) -> Result<&'static Preset, String> {
    PRESETS.iter().find(|preset| preset.name == name).ok_or_else(|| {
        let known: Vec<&str> = PRESETS.iter().map(|preset| preset.name).collect();
        format!("unknown recipe {name:?}: expected one of {}", known.join(", "))
    })
}

/// Parses a command line, filling in the flags of its `--recipe` that it
/// does not give itself.
///
/// # Errors
/// What clap reports for the command line, or for the preset's flags
/// (which would be a bug in [`PRESETS`], caught by its tests).
pub fn parse_from(words: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Cli, clap::Error> {
    let mut words: Vec<OsString> = words.into_iter().map(Into::into).collect();
    let matches = Cli::command().try_get_matches_from(&words)?;
    let train = match matches.subcommand() {
        Some(("train", train)) => train,
        Some(_) => return Cli::from_arg_matches(&matches),
        None => &matches,
    };
    let Some(preset) = train.get_one::<String>("recipe").map(|name| by_name(name)) else {
        return Cli::from_arg_matches(&matches);
    };
    let preset = preset.map_err(|message| Cli::command().error(clap::error::ErrorKind::InvalidValue, message))?;
    words.extend(missing_flags(preset, train));
    Cli::try_parse_from(words)
}

/// The preset's flags that the command line did not give, as words.
fn missing_flags(preset: &Preset, given: &ArgMatches) -> Vec<OsString> {
    let mut words = Vec::new();
    for (flag, value) in preset.flags {
        let id = flag.replace('-', "_");
        // `--lr-decay` is a way of giving `--schedule`.
        let given_as_decay = id == "schedule" && given.value_source("lr_decay") == Some(ValueSource::CommandLine);
        if given.value_source(&id) != Some(ValueSource::CommandLine) && !given_as_decay {
            words.push(format!("--{flag}").into());
            words.push((*value).into());
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, NetworkChoice, TrainArgs};

    fn train_args(words: &[&str]) -> TrainArgs {
        let cli = parse_from(std::iter::once("trainer").chain(words.iter().copied())).unwrap();
        match cli.command {
            Some(Command::Train(args)) => args,
            None => cli.train,
            Some(other) => panic!("not a train command: {other:?}"),
        }
    }

    #[test]
    fn every_preset_means_what_its_flags_typed_out_mean() {
        for preset in PRESETS {
            let mut by_preset = serde_json::to_value(train_args(&["train", "--recipe", preset.name])).unwrap();
            let typed: Vec<String> =
                preset.flags.iter().flat_map(|(flag, value)| [format!("--{flag}"), (*value).to_owned()]).collect();
            let words: Vec<&str> = std::iter::once("train").chain(typed.iter().map(String::as_str)).collect();
            let mut by_flags = serde_json::to_value(train_args(&words)).unwrap();
            by_preset["recipe"] = serde_json::Value::Null;
            by_flags["recipe"] = serde_json::Value::Null;
            assert_eq!(by_preset, by_flags, "--recipe {}", preset.name);
        }
    }

    #[test]
    fn flags_given_win_over_the_presets_in_either_order_and_without_a_subcommand() {
        let strong = train_args(&["train", "--recipe", "strong"]);
        assert_eq!((strong.epochs, strong.ema, strong.augment.as_str()), (40, Some(0.999), "seed+elastic:34,4"));
        let mine = train_args(&["train", "--epochs", "30", "--recipe", "strong", "--schedule", "cosine:30"]);
        assert_eq!((mine.epochs, mine.schedule.as_str(), mine.ema), (30, "cosine:30,0", Some(0.999)));
        let bare = train_args(&["--recipe", "strong", "--seed", "4"]);
        assert_eq!((bare.seed, bare.epochs), (4, 40));
        let seed = train_args(&["train", "--recipe", "seed"]);
        let default = train_args(&["train"]);
        assert_eq!(serde_json::to_value(&seed).unwrap()["epochs"], serde_json::to_value(&default).unwrap()["epochs"]);
        assert_eq!((seed.schedule, seed.ema, seed.augment), (default.schedule, default.ema, default.augment));
    }

    #[test]
    fn lr_decay_is_an_exponential_schedule_and_stands_in_for_a_presets_schedule() {
        assert_eq!(train_args(&["train", "--lr-decay", "0.950"]).schedule_spec(), "exponential:0.95");
        assert_eq!(train_args(&["train"]).schedule_spec(), "constant");
        let strong = train_args(&["--recipe", "strong", "--lr-decay", "0.9"]);
        assert_eq!((strong.schedule_spec(), strong.ema), ("exponential:0.9", Some(0.999)));
        let both = parse_from(["trainer", "--lr-decay", "0.9", "--schedule", "cosine:3"]).unwrap_err().to_string();
        assert!(both.contains("cannot be used with"), "{both}");
        let growing = parse_from(["trainer", "--lr-decay", "1.5"]).unwrap_err().to_string();
        assert!(growing.contains("--lr-decay") && growing.contains("at most 1"), "{growing}");
    }

    #[test]
    fn the_strided_preset_picks_its_network_and_a_given_network_wins() {
        let strided = train_args(&["--recipe", "strided"]);
        assert_eq!(
            (strided.network, strided.epochs, strided.schedule_spec()),
            (NetworkChoice::Strided, 30, "exponential:0.9")
        );
        let mine = train_args(&["--recipe", "strided", "--network", "vgg", "--lr-decay", "0.95"]);
        assert_eq!((mine.network, mine.schedule_spec()), (NetworkChoice::Vgg, "exponential:0.95"));
    }

    #[test]
    fn the_strided_affine_preset_is_strided_with_the_continuous_affine() {
        let preset = train_args(&["--recipe", "strided-affine"]);
        let strided = train_args(&["--recipe", "strided"]);
        assert_eq!(
            (preset.network, preset.epochs, preset.schedule_spec()),
            (strided.network, strided.epochs, strided.schedule_spec())
        );
        assert_eq!(preset.augment, "affine:10,0.1,0.1");
        assert_ne!(preset.augment, strided.augment);
        let mine = train_args(&["--recipe", "strided-affine", "--augment", "seed"]);
        assert_eq!(mine.augment, "seed");
    }

    #[test]
    fn an_unknown_preset_is_an_error_listing_the_known_ones() {
        let error = parse_from(["trainer", "train", "--recipe", "stronger"]).unwrap_err().to_string();
        assert!(
            error.contains("unknown recipe \"stronger\": expected one of seed, strong, strided, strided-affine"),
            "{error}"
        );
    }
}
