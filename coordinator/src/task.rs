//! The job's operators and their subtasks (the tasks that acknowledge checkpoints): the
//! names the coordinator, its statistics and the operator mapping share.

use std::fmt;

/// One operator of the job graph, as recorded in checkpoint metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSpec {
    /// The stable uid (the key of its state in `_metadata`).
    pub uid: String,
    /// A readable name.
    pub name: String,
    /// How many subtasks it runs.
    pub parallelism: u32,
    /// Its number of key groups.
    pub max_parallelism: u32,
}

impl OperatorSpec {
    /// An operator with `parallelism` subtasks and `max_parallelism` key groups.
    pub fn new(
        uid: impl Into<String>,
        name: impl Into<String>,
        parallelism: u32,
        max_parallelism: u32,
    ) -> Self {
        OperatorSpec {
            uid: uid.into(),
            name: name.into(),
            parallelism,
            max_parallelism,
        }
    }
}

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
