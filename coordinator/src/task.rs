//! The job's operators and their subtasks (the tasks that acknowledge checkpoints): the
//! names the coordinator, its statistics and the operator mapping share.

use std::fmt;

pub use cornerstone_checkpoint_store::OperatorSpec;

/// One subtask of one operator: what acknowledges a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The operator's uid.
    pub operator: String,
    /// The subtask index.
    pub subtask: u32,
}

impl TaskId {
    /// Subtask `subtask` of operator `operator`.
    pub fn new(operator: impl Into<String>, subtask: u32) -> Self {
        TaskId {
            operator: operator.into(),
            subtask,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.operator, self.subtask)
    }
}
