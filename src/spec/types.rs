//! Wire types of the pipeline YAML. Every field's doc comment feeds the JSON
//! Schema (`steerbench schema`) and docs/spec.md.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::named_choice;

// ---------------------------------------------------------------- top level

/// A steerbench pipeline: one model, named datasets and named stages.
/// This type only describes the file for the JSON Schema; the loader reads
/// each dataset and stage separately so that all errors are reported.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PipelineFile {
    /// Name of the pipeline; the run directory is `runs/<name>`. Letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Seed for every random choice (splits, random vectors, sampling). Default 0.
    #[serde(default)]
    pub seed: u64,
    /// The model: a registry name (`smollm2-135m-instruct`), a local directory or `.gguf` file, or a hub id `org/name@rev`.
    pub model: String,
    /// How prompts are rendered: `chat` applies the model's chat template, `raw` feeds the text as is. Default chat.
    #[serde(default)]
    pub prompt_format: PromptFormat,
    /// The dtype the model's weight matrices are held in: `f32`, `bf16` or `f16`. Activations, hook sites (captures and steering) and logits are f32 whatever it is. Default f32.
    #[serde(default)]
    pub dtype: Dtype,
    /// Axes of a pipeline matrix: axis name → values (names: ASCII letters, digits, `_`, `-`).
    /// A dataset or stage with `foreach: <axis>` (or a list of axes) is expanded into one
    /// entry per value, named `<name>[<value>]` (`<name>[<v1>,<v2>]` for several axes);
    /// `{<axis>}` in its string values is replaced by the value, and its references to other
    /// expanded entries name the same cell. See docs/spec.md#matrices.
    #[serde(default)]
    pub matrix: std::collections::BTreeMap<String, Vec<MatrixValue>>,
    /// Named datasets. Stages refer to them as `<name>.<split>` (or `<name>` for all rows).
    #[serde(default)]
    pub datasets: std::collections::BTreeMap<String, DatasetEntry>,
    /// Named stages, each of exactly one kind. Stage names are folder names in the run store.
    pub stages: std::collections::BTreeMap<String, StageEntry>,
}

pub const TOP_LEVEL_FIELDS: &[&str] = &[
    "name",
    "seed",
    "model",
    "prompt_format",
    "dtype",
    "matrix",
    "datasets",
    "stages",
];

/// A value of a matrix axis (schema only): a name, or a whole number written as one.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MatrixValue {
    Name(String),
    Number(u64),
}

impl JsonSchema for MatrixValue {
    fn schema_name() -> String {
        "MatrixValue".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        serde_json::from_value(serde_json::json!({
            "description": "a value of a matrix axis: ASCII letters, digits, `_`, `-` (it becomes part of names like `acts[<value>]`)",
            "anyOf": [
                { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$" },
                { "type": "integer", "minimum": 0 }
            ]
        }))
        .expect("static schema")
    }
}

/// `foreach:` of a dataset or stage (schema only): the matrix axis or axes it is expanded over.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct Foreach(pub OneOrMany<String>);

impl JsonSchema for Foreach {
    fn schema_name() -> String {
        "Foreach".into()
    }
    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut v = serde_json::to_value(OneOrMany::<String>::json_schema(gen)).expect("schema");
        v["description"] = serde_json::json!(
            "Expand this entry over matrix axes: one entry per value (per combination for several axes), named `<name>[<value>]`; `{<axis>}` in its strings is replaced by the value and its references to other expanded entries resolve within the same cell."
        );
        serde_json::from_value(v).expect("schema")
    }
}

/// A dataset as written in the file (schema only): a dataset, optionally with `foreach`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct DatasetEntry {
    #[serde(flatten)]
    pub spec: DatasetSpec,
    #[serde(default)]
    pub foreach: Option<Foreach>,
}

impl JsonSchema for DatasetEntry {
    fn schema_name() -> String {
        "DatasetEntry".into()
    }
    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut v = serde_json::to_value(DatasetSpec::json_schema(gen)).expect("schema");
        with_foreach(&mut v, gen);
        serde_json::from_value(v).expect("schema")
    }
}

/// A stage as written in the file (schema only): one kind key, optionally with `foreach`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct StageEntry {
    #[serde(flatten)]
    pub spec: StageSpec,
    #[serde(default)]
    pub foreach: Option<Foreach>,
}

impl JsonSchema for StageEntry {
    fn schema_name() -> String {
        "StageEntry".into()
    }
    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut v = serde_json::to_value(StageSpec::json_schema(gen)).expect("schema");
        // One object schema per kind (`oneOf`): each may also carry `foreach`.
        if let Some(kinds) = v.get_mut("oneOf").and_then(|k| k.as_array_mut()) {
            for k in kinds {
                with_foreach(k, gen);
            }
        } else {
            with_foreach(&mut v, gen);
        }
        serde_json::from_value(v).expect("schema")
    }
}

/// Adds the optional `foreach` property to an object schema.
fn with_foreach(v: &mut serde_json::Value, gen: &mut schemars::gen::SchemaGenerator) {
    let foreach = serde_json::to_value(gen.subschema_for::<Foreach>()).expect("schema");
    if let Some(props) = v.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert("foreach".into(), foreach);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// Apply the model's own chat template.
    #[default]
    Chat,
    /// Use the prompt text as is.
    Raw,
}

/// The dtype the model's weight matrices are held in (`dtype:` at the top level,
/// `--dtype` on the command line).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// 32-bit floats (the weights as computed in f32 everywhere).
    #[default]
    F32,
    /// bfloat16 weights: half the memory, f32 activations.
    Bf16,
    /// IEEE half-precision weights: half the memory, f32 activations.
    F16,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }

    /// The runtime's dtype.
    pub fn candle(self) -> steerbench_model::DType {
        match self {
            Dtype::F32 => steerbench_model::DType::F32,
            Dtype::Bf16 => steerbench_model::DType::BF16,
            Dtype::F16 => steerbench_model::DType::F16,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------- datasets

pub use steerbench_data::{FieldOverrides, Format, Source, SplitFractions, SplitName};

/// One dataset: where it comes from, its format, which fields hold what, and how it is split.
/// The value types are the data crate's own (one type per concept), so what the spec accepts
/// is exactly what the loader reads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// `builtin:<name>` (shipped in datasets/), a local path (relative to the spec file; .json, .jsonl, .csv, .parquet) or an http(s) URL.
    pub source: Source,
    /// Layout of the records.
    pub format: Format,
    /// Which record field holds each role (`id` and `category` for every format); unspecified roles use the format's defaults.
    #[serde(default)]
    pub fields: FieldOverrides,
    /// Fractions of the records for train / val / test (seeded, stratified); must sum to 1. Default 0.6 / 0.2 / 0.2.
    #[serde(default)]
    pub split: SplitFractions,
    /// Keep at most this many records: a seeded, stratified subsample taken before splitting.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `text` format only: length of each token window for perplexity. Default 256.
    #[serde(default)]
    pub window_tokens: Option<usize>,
    /// `icl_task` format only: how a demonstration (`{input}`, `{output}`) and the query
    /// (`{input}`) are written. Default `demo: "Q: {input}\nA: {output}\n\n"`,
    /// `query: "Q: {input}\nA:"`.
    #[serde(default)]
    pub template: Option<steerbench_data::IclTemplate>,
    /// The longest item allowed, in tokens (the whole sequence a pass reads: chat template,
    /// prompt and continuation). A longer item is an error naming the record and its
    /// length, found before any forward pass. Default, and upper bound: the model's context.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// URL sources only: the sha256 (64 hex digits) the downloaded bytes must have. Other
    /// bytes are refused, naming both hashes. `steerbench lock` pins every URL in a lock
    /// file beside the spec instead.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Read the records as another format. `contrastive_ab` + `as: open_ended` derives an
    /// open-ended item from each A/B question (Pres et al.): the question without its
    /// choice list as the prompt, the matching and non-matching choices' texts as the two
    /// continuations (docs/spec.md#derived-open-ended-items).
    #[serde(default, rename = "as")]
    pub read_as: Option<Format>,
}

pub const DATASET_FIELDS: &[&str] = &[
    "source",
    "format",
    "fields",
    "split",
    "limit",
    "window_tokens",
    "template",
    "max_tokens",
    "sha256",
    "as",
];

/// A reference to a dataset split: `<dataset>.<split>`, or `<dataset>` for all records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetRef {
    pub dataset: String,
    pub split: Option<SplitName>,
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.split {
            Some(s) => write!(f, "{}.{}", self.dataset, s.name()),
            None => f.write_str(&self.dataset),
        }
    }
}

impl<'de> Deserialize<'de> for DatasetRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        let (dataset, split) = match s.split_once('.') {
            None => (s.as_str(), None),
            Some((ds, sp)) => {
                let Some(split) = SplitName::from_name(sp) else {
                    return Err(D::Error::custom(format!(
                        "unknown split `{sp}`, expected one of `train`, `val`, `test`"
                    )));
                };
                (ds, Some(split))
            }
        };
        if dataset.is_empty() {
            return Err(D::Error::custom(
                "a dataset reference needs a dataset name: `<dataset>.<split>`",
            ));
        }
        Ok(DatasetRef {
            dataset: dataset.to_string(),
            split,
        })
    }
}

impl Serialize for DatasetRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for DatasetRef {
    fn schema_name() -> String {
        "DatasetRef".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        serde_json::from_value(serde_json::json!({
            "type": "string",
            "pattern": "^[^.]+(\\.(train|val|test))?$",
            "description": "`<dataset>.<split>` (split: train, val, test) or `<dataset>` for all records"
        }))
        .expect("static schema")
    }
}

// ---------------------------------------------------------------- sweep values

/// Layers: `all` or a list of block indices (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Layers {
    #[default]
    All,
    List(Vec<usize>),
}

impl<'de> Deserialize<'de> for Layers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Layers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`all`, a layer index, or a list of layer indices")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Layers, E> {
                if s == "all" {
                    Ok(Layers::All)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(s), &self))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Layers, E> {
                Ok(Layers::List(vec![n as usize]))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Layers, E> {
                Err(E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Layers, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<usize>()? {
                    v.push(x);
                }
                Ok(Layers::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Layers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Layers::All => s.serialize_str("all"),
            Layers::List(v) => v.serialize(s),
        }
    }
}

impl JsonSchema for Layers {
    fn schema_name() -> String {
        "Layers".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        serde_json::from_value(serde_json::json!({
            "description": "`all`, a layer index, or a list of layer indices (0-based blocks)",
            "oneOf": [
                { "const": "all" },
                { "type": "integer", "minimum": 0 },
                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 }
            ]
        }))
        .expect("static schema")
    }
}

/// One value or a list of values.
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::IntoDeserializer;
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(a)).map(OneOrMany)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(a)).map(|x| OneOrMany(vec![x]))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(s.into_deserializer()).map(|x| OneOrMany(vec![x]))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|x| OneOrMany(vec![x]))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|x| OneOrMany(vec![x]))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|x| OneOrMany(vec![x]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> String {
        format!("OneOrMany_{}", T::schema_name())
    }
    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        let one = serde_json::to_value(gen.subschema_for::<T>()).expect("schema");
        serde_json::from_value(serde_json::json!({
            "anyOf": [ one.clone(), { "type": "array", "items": one, "minItems": 1 } ]
        }))
        .expect("schema")
    }
}

// ---------------------------------------------------------------- stages

/// One stage: a mapping with exactly one key, the stage kind.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StageSpec {
    /// Read activations of the model on a dataset split.
    Extract(ExtractParams),
    /// Compute steering vectors from an extract stage's activations.
    Vectors(VectorsParams),
    /// Train LoRA adapters (fine-tuning baselines) on a dataset's contrastive pairs.
    Finetune(FinetuneParams),
    /// Steer the model with the vectors over a sweep and score it.
    Evaluate(EvaluateParams),
    /// Measure how much steering damages the model.
    Degradation(DegradationParams),
    /// Render the markdown report.
    Report(ReportParams),
}

/// The stage kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Extract,
    Vectors,
    Finetune,
    Evaluate,
    Degradation,
    Report,
}

impl StageKind {
    pub const ALL: [StageKind; 6] = [
        StageKind::Extract,
        StageKind::Vectors,
        StageKind::Finetune,
        StageKind::Evaluate,
        StageKind::Degradation,
        StageKind::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StageKind::Extract => "extract",
            StageKind::Vectors => "vectors",
            StageKind::Finetune => "finetune",
            StageKind::Evaluate => "evaluate",
            StageKind::Degradation => "degradation",
            StageKind::Report => "report",
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl StageSpec {
    pub fn kind(&self) -> StageKind {
        match self {
            StageSpec::Extract(_) => StageKind::Extract,
            StageSpec::Vectors(_) => StageKind::Vectors,
            StageSpec::Finetune(_) => StageKind::Finetune,
            StageSpec::Evaluate(_) => StageKind::Evaluate,
            StageSpec::Degradation(_) => StageKind::Degradation,
            StageSpec::Report(_) => StageKind::Report,
        }
    }
}

/// `extract`: activations at the given layers, sites and read position.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractParams {
    /// Dataset split to read, `<dataset>.<split>`.
    pub dataset: DatasetRef,
    /// Layers to read. Default `all`.
    #[serde(default)]
    pub layers: Layers,
    /// Token position(s) to read. Default `answer`.
    #[serde(default)]
    pub read_position: ReadPosition,
    /// Hook sites to read. Default `[resid_post]`.
    #[serde(default = "default_sites")]
    pub sites: Vec<Site>,
}

fn default_sites() -> Vec<Site> {
    vec![Site::ResidPost]
}

named_choice! {
    /// Where activations are read.
    pub enum ReadPosition {
        "answer" => Answer: "the answer token (the letter of an A/B answer, the first token of a completion)",
        "last_prompt" => LastPrompt: "the last token of the prompt",
        "completion_mean" => CompletionMean: "the mean over the completion tokens",
        "indices" => Indices(Vec<i64>): "explicit token indices on the unpadded sequence; negative counts from the end",
    }
}

#[allow(clippy::derivable_impls)] // the enum comes from a macro
impl Default for ReadPosition {
    fn default() -> Self {
        ReadPosition::Answer
    }
}

/// Hook sites inside a block.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// Residual stream before the block.
    ResidPre,
    /// Residual stream between attention and MLP.
    ResidMid,
    /// Residual stream after the block.
    ResidPost,
    /// Attention output.
    AttnOut,
    /// MLP output.
    MlpOut,
    /// Per-head attention outputs before the output projection.
    HeadOut,
}

/// `vectors`: steering vectors per method and layer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorsParams {
    /// The `extract` stage whose activations are used.
    pub activations: String,
    /// Extraction methods (a sweep): names, or `{name: {params}}`.
    pub methods: Vec<Method>,
    /// How vectors are scaled. Default `resid_norm`.
    #[serde(default)]
    pub normalize: Normalize,
}

named_choice! {
    /// A vector-extraction method.
    pub enum Method {
        "caa" => Caa: "mean difference of paired activations (Contrastive Activation Addition)",
        "pca" => Pca: "first principal component of paired differences, sign fixed so positives project higher",
        "pca_center" => PcaCenter: "first principal component of class-centred activations",
        "probe" => Probe(ProbeParams): "L2-regularised logistic regression; the direction is the normalised weight",
        "icv" => Icv(IcvParams): "In-Context Vectors: PCA of demonstration-pair differences at the last token, all layers",
        "function_vector" => FunctionVector(FunctionVectorParams): "Function Vectors: sum of the top-K heads' mean outputs (ranked by indirect effect on ICL prompts), added at its layer(s)",
        "ablation" => Ablation: "directional ablation of the CAA direction at all layers and positions",
        "affine" => Affine(AffineParams): "affine map: shift the class mean and apply a projection or Gaussian transport",
        "mlp" => Mlp(MlpParams): "a small MLP trained to map negative activations toward positive ones",
        "random" => Random(SeedParams): "random direction with the CAA vector's norm (control)",
        "shuffled" => Shuffled(SeedParams): "label-permutation null (control): random halves of the pooled activations, CAA direction projected out, CAA's norm",
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeParams {
    /// L2 regularisation strength. Default 1.0.
    #[serde(default = "one")]
    pub l2: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IcvParams {
    /// Strength λ of the in-context vector. Default 0.1.
    #[serde(default = "point_one")]
    pub strength: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionVectorParams {
    /// Layer(s) at whose output the function vector is added (one number or a list;
    /// `layers:` is accepted too). The vector is the same; each layer is evaluated.
    #[serde(alias = "layers")]
    pub layer: OneOrMany<usize>,
    /// icl_task dataset split whose k-shot prompts give the mean head outputs and the head ranking.
    pub dataset: DatasetRef,
    /// Number of top heads (by average indirect effect) summed. Default 10.
    #[serde(default = "ten")]
    pub top_k: usize,
    /// Demonstrations per ICL prompt. Default 10.
    #[serde(default = "ten")]
    pub shots: usize,
    /// ICL prompts used for the mean head outputs and, with shuffled labels, the indirect effects. Default 16.
    #[serde(default = "sixteen")]
    pub prompts: usize,
    /// Layers whose heads are ranked. Default `all`.
    #[serde(default)]
    pub head_layers: Layers,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AffineParams {
    /// Which affine map. Default `mean_shift_projection`.
    #[serde(default)]
    pub kind: AffineKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AffineKind {
    /// Project out the difference direction, then add the target class mean.
    #[default]
    MeanShiftProjection,
    /// Optimal affine transport between Gaussians fitted to the two classes.
    GaussianTransport,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MlpParams {
    /// Hidden width. Default 64.
    #[serde(default = "sixty_four")]
    pub hidden: usize,
    /// Training epochs. Default 200.
    #[serde(default = "two_hundred")]
    pub epochs: usize,
    /// AdamW learning rate. Default 0.001.
    #[serde(default = "lr_default")]
    pub lr: f64,
    /// Initialisation and shuffling seed. Default 0.
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedParams {
    /// Seed of the control. Default 0.
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Keep the method's own scale.
    Raw,
    /// Unit L2 norm.
    Unit,
    /// Scaled to the median residual-stream norm at that layer, so multipliers compare across layers and methods.
    #[default]
    ResidNorm,
}

/// `finetune`: LoRA adapters trained on the contrastive pairs the steering methods
/// extract from (the same rendered prompts), so that fine-tuning is evaluated beside
/// steering as a baseline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinetuneParams {
    /// Training split (contrastive_ab, contrastive_completion, open_ended with
    /// references, or tool_choice behaviour tasks): positive side chosen, negative rejected.
    pub dataset: DatasetRef,
    /// Validation split: loss, reward margin and preference accuracy after every epoch,
    /// and early stopping with `patience`.
    #[serde(default)]
    pub val: Option<DatasetRef>,
    /// Fine-tuning methods (a sweep): names, or `{name: {params}}`.
    pub methods: Vec<FinetuneMethod>,
}

named_choice! {
    /// A fine-tuning baseline.
    pub enum FinetuneMethod {
        "sft_lora" => SftLora(LoraParams): "LoRA trained by supervised fine-tuning: next-token loss on the positive answer only",
        "dpo_lora" => DpoLora(LoraParams): "LoRA trained by DPO: positive answer chosen, negative rejected, the frozen base model as reference",
    }
}

impl FinetuneMethod {
    pub fn params(&self) -> &LoraParams {
        match self {
            FinetuneMethod::SftLora(p) | FinetuneMethod::DpoLora(p) => p,
        }
    }
}

/// LoRA settings of a fine-tuning baseline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraParams {
    /// Rank r of the A (r × in) and B (out × r) matrices. Default 8.
    #[serde(default = "eight")]
    pub rank: usize,
    /// The delta is scaled by alpha / r. Default 16.
    #[serde(default = "sixteen_f")]
    pub alpha: f64,
    /// Dropout on the LoRA input while training. Default 0.
    #[serde(default)]
    pub dropout: f64,
    /// Projections adapted: q, k, v, o, gate, up, down (fused families: qkv, gate_up).
    /// Default all seven of a Llama-style block.
    #[serde(default = "default_lora_modules")]
    pub modules: Vec<String>,
    /// Blocks adapted. Default `all`.
    #[serde(default)]
    pub layers: Layers,
    /// AdamW learning rate. Default 1e-4.
    #[serde(default = "lora_lr")]
    pub lr: f64,
    /// AdamW weight decay. Default 0.
    #[serde(default)]
    pub weight_decay: f64,
    /// Passes over the training pairs. Default 3.
    #[serde(default = "three")]
    pub epochs: usize,
    /// Pairs per optimizer step. Default 8.
    #[serde(default = "eight")]
    pub batch_size: usize,
    /// Initialisation, shuffling and dropout seed. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many epochs without a lower validation loss and keep the best
    /// epoch's adapter (needs `val`). Default: no early stopping.
    #[serde(default)]
    pub patience: Option<usize>,
    /// DPO temperature β (`dpo_lora` only). Default 0.1.
    #[serde(default)]
    pub beta: Option<f64>,
}

fn default_lora_modules() -> Vec<String> {
    ["q", "k", "v", "o", "gate", "up", "down"]
        .map(String::from)
        .to_vec()
}
fn eight() -> usize {
    8
}
fn three() -> usize {
    3
}
fn sixteen_f() -> f64 {
    16.0
}
fn lora_lr() -> f64 {
    1e-4
}

/// `evaluate`: steer over layers × multipliers × positions × methods and score.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// The `vectors` stage to apply.
    pub vectors: String,
    /// A `finetune` stage whose adapters are evaluated beside the vectors, each a method
    /// whose multiplier scales its LoRA delta (0: the base model, 1: the trained adapter).
    /// Layers and positions do not apply to them (they act in every block they adapt,
    /// at every position). Left out of fingerprints when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters: Option<String>,
    /// Multipliers of the adapters' LoRA deltas (a sweep; 1 = the trained adapter, 0 =
    /// the base model). Default: `multipliers`. Left out of fingerprints when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_multipliers: Option<Vec<f64>>,
    /// Dataset splits to evaluate on (`dataset:` with one value is accepted too).
    #[serde(alias = "dataset")]
    pub datasets: OneOrMany<DatasetRef>,
    /// Layers at which the vector is added (a sweep).
    pub layers: Layers,
    /// Multipliers of the vector (a sweep); include 0 for the unsteered baseline.
    pub multipliers: Vec<f64>,
    /// Token positions steered (a sweep). Default `all`.
    #[serde(default = "default_positions")]
    pub positions: OneOrMany<PositionSel>,
    /// Metrics computed on the same forward passes.
    pub metrics: Vec<Metric>,
    /// Prompting baselines evaluated beside the vectors.
    #[serde(default)]
    pub baselines: Vec<Baseline>,
    /// Generation settings for the `generation` metric.
    #[serde(default)]
    pub generation: GenerationParams,
}

fn default_positions() -> OneOrMany<PositionSel> {
    OneOrMany(vec![PositionSel::All])
}

named_choice! {
    /// Token positions where a vector is applied.
    pub enum PositionSel {
        "all" => All: "every position",
        "prompt" => Prompt: "prompt positions only",
        "generated" => Generated: "completion / generated positions only",
        "last" => Last: "the last position",
        "indices" => Indices(Vec<i64>): "explicit indices on the unpadded sequence; negative counts from the end",
        "all_turns" => AllTurns: "conversations: every token of the conversation",
        "first_turn" => FirstTurn: "conversations: up to the end of the first assistant reply, unsteered after (on its cached history)",
        "current_turn" => CurrentTurn: "conversations: only the reply being scored",
        "user_turns" => UserTurns: "conversations: only the tokens of user messages",
    }
}

impl PositionSel {
    /// The turn scope of a conversation-only selector.
    pub fn scope(&self) -> Option<steerbench_eval::dialogue::Scope> {
        use steerbench_eval::dialogue::Scope;
        match self {
            PositionSel::AllTurns => Some(Scope::AllTurns),
            PositionSel::FirstTurn => Some(Scope::FirstTurn),
            PositionSel::CurrentTurn => Some(Scope::CurrentTurn),
            PositionSel::UserTurns => Some(Scope::UserTurns),
            _ => None,
        }
    }
}

/// Metrics of the `evaluate` stage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// p(matching letter) / (p(A) + p(B)) at the answer position (contrastive_ab).
    AbProbability,
    /// log p(positive) − log p(negative) completion, summed and length-normalised.
    Propensity,
    /// Per-input slope of propensity against multiplier; anti-steerable fraction.
    Steerability,
    /// Log-likelihood of matching vs non-matching continuations of open-ended prompts, relative to unsteered.
    OpenEndedLikelihood,
    /// Top-1 accuracy of the first answer token on icl_task datasets.
    IclAccuracy,
    /// Generations scored by concept similarity, fluency and distinct-n.
    Generation,
}

named_choice! {
    /// A prompting or counterbalancing baseline.
    pub enum Baseline {
        "system_prompt" => SystemPrompt(SystemPromptParams): "a positive / negative system prompt instead of a vector",
        "few_shot" => FewShot(FewShotParams): "k behaviour-matching examples in the prompt",
        "letter_swap" => LetterSwap: "A/B items re-evaluated with the answer letters swapped",
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemPromptParams {
    /// System prompt that asks for the behaviour. Default: the dataset's own, if it has one.
    #[serde(default)]
    pub positive: Option<String>,
    /// System prompt that asks for the opposite. Default: the dataset's own, if it has one.
    #[serde(default)]
    pub negative: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FewShotParams {
    /// Number of examples (taken from the train split). Default 4.
    #[serde(default = "four")]
    pub k: usize,
}

/// Settings of the `generation` metric.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationParams {
    /// Tokens generated per prompt. Default 48.
    #[serde(default = "forty_eight")]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy. Default 0.
    #[serde(default)]
    pub temperature: f64,
    /// Nucleus sampling mass. Default 1.
    #[serde(default = "one")]
    pub top_p: f64,
    /// Generate for at most this many prompts per dataset. Default: all.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_new_tokens: 48,
            temperature: 0.0,
            top_p: 1.0,
            limit: None,
        }
    }
}

/// `degradation`: damage done by steering, at the evaluate stage's chosen settings or a given sweep.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradationParams {
    /// The `vectors` stage to apply.
    pub vectors: String,
    /// A `finetune` stage whose adapters are measured beside the vectors (as in
    /// `evaluate`). Left out of fingerprints when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters: Option<String>,
    /// An `evaluate` stage whose best (layer, multiplier) per method is reused.
    #[serde(default)]
    pub from: Option<String>,
    /// Text corpus (format text) for `perplexity`.
    #[serde(default)]
    pub corpus: Option<DatasetRef>,
    /// Neutral prompts (any prompt format) for `kl_unsteered`.
    #[serde(default)]
    pub neutral: Option<DatasetRef>,
    /// Multiple-choice benchmark (format multiple_choice) for `mc_accuracy`.
    #[serde(default)]
    pub mc: Option<DatasetRef>,
    /// Tool-choice tasks (format tool_choice, neutral tasks: `correct` + `distractors`)
    /// for `tool_accuracy`. Left out of fingerprints when absent (stages without it keep
    /// their fingerprints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<DatasetRef>,
    /// Degradation metrics.
    pub metrics: Vec<DegradationMetric>,
    /// Layers to sweep (needed when `from` is absent).
    #[serde(default)]
    pub layers: Option<Layers>,
    /// Multipliers to sweep (needed when `from` is absent; with `from`, an extra sweep beside the chosen setting).
    #[serde(default)]
    pub multipliers: Option<Vec<f64>>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DegradationMetric {
    /// Perplexity on the text corpus, steered vs unsteered.
    Perplexity,
    /// KL(unsteered ‖ steered) of next-token distributions on neutral prompts.
    KlUnsteered,
    /// Accuracy on the multiple-choice benchmark.
    McAccuracy,
    /// Top-1 tool-call accuracy on neutral tool-choice tasks (length-normalised
    /// log-likelihood of each candidate call).
    ToolAccuracy,
}

/// `report`: markdown report from other stages' outputs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Stages whose outputs the report reads.
    pub inputs: Vec<String>,
    /// A minijinja template (relative to the spec file). Default: the built-in template.
    #[serde(default)]
    pub template: Option<std::path::PathBuf>,
}

fn one() -> f64 {
    1.0
}
fn point_one() -> f64 {
    0.1
}
fn lr_default() -> f64 {
    1e-3
}
fn four() -> usize {
    4
}
fn sixteen() -> usize {
    16
}
fn ten() -> usize {
    10
}
fn forty_eight() -> usize {
    48
}
fn sixty_four() -> usize {
    64
}
fn two_hundred() -> usize {
    200
}
