//! Built-in datasets written by this project (datasets/*.jsonl, documented in datasets/README.md),
//! embedded in the binary so `builtin:<file stem>` works offline and from any directory.

use crate::format::Format;

/// One embedded dataset.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// File stem; the source is `builtin:<name>`.
    pub name: &'static str,
    /// The format its rows follow (with the default field mapping).
    pub format: Format,
    /// The JSONL text.
    pub content: &'static str,
}

macro_rules! builtins {
    ($($name:literal => $format:ident),* $(,)?) => {
        const BUILTINS: &[Builtin] = &[$(
            Builtin {
                name: $name,
                format: Format::$format,
                content: include_str!(concat!("../../../datasets/", $name, ".jsonl")),
            },
        )*];
    };
}

builtins! {
    "sentiment_ab" => ContrastiveAb,
    "formality_ab" => ContrastiveAb,
    "sentiment_completion" => ContrastiveCompletion,
    "formality_completion" => ContrastiveCompletion,
    "sentiment_open" => OpenEnded,
    "formality_open" => OpenEnded,
    "neutral_prompts" => OpenEnded,
    "icl_antonyms" => IclTask,
    "icl_country_capital" => IclTask,
    "icl_en_fr" => IclTask,
    "icl_past_tense" => IclTask,
    "icl_uppercase" => IclTask,
    "mc_general" => MultipleChoice,
    "corpus_en" => Text,
    "conversations_sentiment" => Conversation,
    "tools_caution" => ToolChoice,
    "tools_neutral" => ToolChoice,
}

/// All embedded datasets, in a stable order.
pub fn all() -> &'static [Builtin] {
    BUILTINS
}

/// The embedded dataset called `name` (the file stem, without `builtin:`).
pub fn get(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load_builtin, DataError};

    #[test]
    fn every_builtin_loads_with_default_fields() {
        for b in all() {
            let ds = load_builtin(b.name).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert_eq!(ds.records.format(), b.format);
            assert!(!ds.records.is_empty(), "{}", b.name);
        }
    }

    /// Guards against a dataset file added to datasets/ but not embedded here (or removed).
    #[test]
    fn every_dataset_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = all().iter().map(|b| b.name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    /// The built-in A/B items must support counterbalancing (option lines found for both letters)
    /// and split so that both letters reach every split.
    #[test]
    fn builtin_ab_items_swap_and_split_with_both_letters() {
        use crate::{split_records, swap_letters, Records, SplitFractions, SplitName};
        for b in all().iter().filter(|b| b.format == Format::ContrastiveAb) {
            let ds = load_builtin(b.name).unwrap();
            let Records::ContrastiveAb(items) = &ds.records else {
                panic!()
            };
            for item in items {
                let swapped = swap_letters(item).unwrap_or_else(|e| panic!("{}: {e}", b.name));
                assert_eq!(&swap_letters(&swapped).unwrap(), item);
            }
            let splits = split_records(&ds.records, None, &SplitFractions::default(), 0).unwrap();
            for split in SplitName::ALL {
                let Records::ContrastiveAb(v) = splits.get(split) else {
                    panic!()
                };
                let a = v.iter().filter(|x| x.matching == crate::Letter::A).count();
                assert!(
                    a > 0 && a < v.len(),
                    "{} {split:?}: {a} of {}",
                    b.name,
                    v.len()
                );
            }
        }
    }

    #[test]
    fn unknown_name_is_none() {
        assert!(get("definitely_not_a_dataset").is_none());
        assert!(matches!(
            load_builtin("definitely_not_a_dataset"),
            Err(DataError::UnknownBuiltin { .. })
        ));
    }
}
