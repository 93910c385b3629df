//! The run folder, the contract between stages: where each file goes (`names`) and how files
//! are written so that one with its final name is always whole (`files`). Every stage writes
//! through here: export's chunks, the manifest and reports, import's and cdc's checkpoints.

pub mod files;
pub mod names;

pub use files::{hash_file, is_disk_full, write_atomically, ChunkWriter, Committed, HashingWriter, PendingFile};
pub use names::{chunk_path, encode_component, rejects_path};
