//! The bottom layer of file handling, shared by every layer above: files and folders written
//! atomically (never seen half-written), NumPy files opened and their headers read (for the
//! loaders of inputs and targets), relevance heatmaps as PNG files, progress bars on stderr, stop requests (Ctrl-C) and where an audit's time goes.

pub mod atomic;
pub mod heatmap;
pub mod interrupt;
pub mod npy;
pub mod output_dir;
pub mod profile;
pub mod progress;

pub use atomic::{
    write_atomic, write_json_atomic, write_npy_f64_atomic, write_npy_f64_shaped_atomic, AtomicFile,
};
pub use output_dir::OutputDir;
pub use progress::progress_bar;
