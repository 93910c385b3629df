//! The one work queue all worker connections serve: planning tasks first (so chunk tasks of
//! big tables appear early), chunk tasks after. The coordinator closes it when no task is
//! outstanding, or at once on failure; workers exit when it is closed and empty.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::chunk::ChunkJob;

pub enum Task {
    Plan { table: usize },
    Chunk(ChunkJob),
}

#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<(VecDeque<Task>, bool)>,
    ready: Condvar,
}

impl WorkQueue {
    pub fn push_back(&self, task: Task) {
        self.state.lock().expect("queue lock").0.push_back(task);
        self.ready.notify_one();
    }

    /// Stops handing out work; with `drop_pending`, discards what was not started.
    pub fn close(&self, drop_pending: bool) {
        let mut s = self.state.lock().expect("queue lock");
        s.1 = true;
        if drop_pending {
            s.0.clear();
        }
        self.ready.notify_all();
    }

    /// The next task, waiting while the queue is open and empty; None once closed and empty.
    pub fn pop(&self) -> Option<Task> {
        let mut s = self.state.lock().expect("queue lock");
        loop {
            if let Some(t) = s.0.pop_front() {
                return Some(t);
            }
            if s.1 {
                return None;
            }
            s = self.ready.wait(s).expect("queue lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiting_workers_leave_when_the_queue_closes() {
        let q = Arc::new(WorkQueue::default());
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut n = 0;
                    while q.pop().is_some() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for t in 0..5 {
            q.push_back(Task::Plan { table: t });
        }
        q.close(false);
        let total: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 5, "every queued task is served before workers leave");
    }
}
