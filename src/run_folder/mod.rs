//! The run folder, the contract between stages: where each file goes (`names`) and how files
//! are written so that one with its final name is always whole (`files`). Every stage writes
//! through here: export's chunks, the manifest and reports, import's and cdc's checkpoints;
//! `lock` keeps one writer per stage in a folder.

pub mod files;
pub mod lock;
pub mod names;

pub use files::{disk_full_hint, hash_file, is_disk_full, write_atomically, ChunkWriter, Committed, HashingWriter, PendingFile};
pub use names::{chunk_path, encode_component, rejects_path};
