//! steerbench-data: dataset formats, field mappings, loaders (JSON / JSONL / CSV / Parquet from
//! a path, an http(s) URL or the embedded built-ins), seeded stratified splits and prompt
//! rendering as plain data (no tokenizer here; chat templates are applied by the caller).

pub mod builtin;
pub mod conversation;
pub mod error;
pub mod extract;
pub mod fields;
pub mod format;
pub mod load;
pub mod remote;
pub mod render;
pub mod rows;
pub mod source;
pub mod split;

pub use conversation::{Conversation, ToolCall, ToolTask, ToolTaskKind};
pub use error::{DataError, Loc, Result};
pub use fields::{
    AbFields, CompletionFields, FieldMap, FieldOverrides, IclFields, McFields, OpenEndedFields,
    TextFields, COMMON_ROLES, DEFAULT_CATEGORY_FIELD, DEFAULT_ID_FIELD,
};
pub use format::{
    ContrastiveAb, ContrastiveCompletion, Format, Icl, Letter, MultipleChoice, OpenEnded, Record,
    Records, Text,
};
pub use load::{check_hash, load, load_builtin, load_bytes, load_checked, Dataset, LoadOptions};
pub use remote::{Fetched, Mirror, Origin, Pin, RemoteStore};
pub use render::{
    ab_answer_letters, ab_parts, ab_to_multiple_choice, ab_to_open_ended, chunk_token_windows,
    completion_parts, derive_records, icl_prompt, item_seed, mc_parts, open_ended_parts,
    render_raw, sample_demos, shuffle_labels, swap_letters, tool_parts, IclPrompt, IclTemplate,
    McStyle, PromptParts, TOOLS_PREAMBLE,
};
pub use source::{content_hash, FileType, Source};
pub use split::{
    limit_indices, plan_split, split_records, SplitFractions, SplitIndices, SplitName, Splits,
};
