//! The simulator's alert-handling tasks (`HandleSecurityEvents` → `TaskId`): what each does
//! to its alerts once it completes, kept (bounded) for status queries. Data only: the world
//! holds them, and [`super::handle`] creates, answers and applies them.

use std::collections::{BTreeMap, VecDeque};

/// At most this many alert tasks are kept; the oldest are forgotten first (their status is then
/// `InvalidParameter`, as for an unknown task).
pub(crate) const MAX_TASKS: usize = 10_000;
/// The first task id (the sample's).
const FIRST_TASK_ID: i64 = 9_087_001;

/// What a task does to one alert once it completes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change {
    pub(crate) status: i64,
    /// New `MarkMisRules` text (`Some("")` clears it); `None` leaves it.
    pub(crate) mark_rules: Option<String>,
}

/// One `HandleSecurityEvents` call.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    /// Per event, in request order: the change, or the error code it failed with.
    pub(crate) events: Vec<(i64, Result<Change, &'static str>)>,
    /// When it was created (the alerts' `OperateTime`).
    pub(crate) at_ms: i64,
    /// Whether a status query has seen it (the first one answers `Processing`).
    pub(crate) queried: bool,
}

/// The alert-handling tasks: every one kept (bounded) for status queries, the unapplied ones
/// queued.
pub(crate) struct Tasks {
    next_id: i64,
    pub(crate) tasks: BTreeMap<i64, Task>,
    /// Tasks whose change is not applied yet, oldest first.
    pub(crate) pending: VecDeque<i64>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            next_id: FIRST_TASK_ID,
            tasks: BTreeMap::new(),
            pending: VecDeque::new(),
        }
    }
}

impl Tasks {
    pub(crate) fn create(
        &mut self,
        events: Vec<(i64, Result<Change, &'static str>)>,
        at_ms: i64,
    ) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        while self.tasks.len() >= MAX_TASKS {
            let Some((&oldest, _)) = self.tasks.iter().next() else {
                break;
            };
            self.tasks.remove(&oldest);
            self.pending.retain(|t| *t != oldest);
        }
        self.tasks.insert(
            id,
            Task {
                events,
                at_ms,
                queried: false,
            },
        );
        self.pending.push_back(id);
        id
    }
}
