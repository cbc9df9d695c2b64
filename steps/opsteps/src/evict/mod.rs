//! Pod classification, eviction with PodDisruptionBudget handling, and waiting for deletion by
//! UID. Shared by `drain-node` and `evict-old-pods`, split along its seams: [`pods`]
//! (predicates), [`pdb`] (budgets), [`request`] (the Eviction and its answers), [`watch`]
//! (the pod watch). Paged lists are [`crate::list`]'s, label selectors [`crate::selector`]'s.

pub mod pdb;
pub mod pods;
pub mod request;
pub mod watch;

pub use pdb::{pdb_selects, pdb_unsatisfiable};
pub use pods::*;
pub use request::{EvictOptions, EvictResult, delete, evict};
pub use watch::{PodSet, PodWatch, WatchError, fatal_watch_error, is_gone};
