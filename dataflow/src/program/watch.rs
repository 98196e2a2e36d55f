//! Watches on a program's variables: threshold reads (a continuation or a future), the
//! executor of the futures spawned on the program, subscriptions, and triggers. A watch is
//! checked when its variable changes; those whose condition holds move to a ready list that
//! runs after the change, in order (see the [program docs](super) on reads).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use rasp_lattice::{Lattice, Threshold};

use super::{Program, Var};
use crate::erased::{downcast, AnyLattice};
use crate::Error;

type OnceFn = Box<dyn FnOnce(&mut Program, &dyn AnyLattice)>;
type EveryFn = Box<dyn FnMut(&mut Program, &dyn AnyLattice)>;
type Check = Box<dyn Fn(&dyn AnyLattice) -> bool>;
type Guard = Box<dyn Fn(&Program) -> bool>;

/// What waits on a variable: a threshold read, a trigger or a subscription.
pub(super) enum Watch {
    /// A threshold read: runs once, when the threshold holds.
    Read { check: Check, f: OnceFn },
    /// A trigger: like a read, but named and recorded as fired; with a guard, it fires only
    /// when the guard also holds (re-checked on every change of the variable and at
    /// [`Program::recheck_triggers`]).
    Trigger {
        name: String,
        check: Check,
        guard: Option<Guard>,
        f: OnceFn,
    },
    /// A subscription: runs on every change (the slot is empty while it runs).
    Every { id: u64, f: Option<EveryFn> },
}

/// A watch whose condition held, waiting to run (with the index of its variable).
pub(super) enum Ready {
    Once(OnceFn, usize),
    Every(u64, usize),
}

/// The action a finished task leaves for the program.
pub(super) type TaskDone = Box<dyn FnOnce(&mut Program)>;

/// A future spawned on the program ([`Program::spawn`]) and its wake flag.
pub(super) struct Task {
    fut: Pin<Box<dyn Future<Output = TaskDone>>>,
    wake: Arc<TaskWake>,
}

/// A task's wake flag: set by its waker, read (and cleared) by the program's poll loop.
struct TaskWake(AtomicBool);

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct ReadSlot<L> {
    value: Option<L>,
    waker: Option<Waker>,
}

/// A threshold read as a future ([`Program::read_async`]): resolves to the first state of the
/// variable on which the threshold holds, when the program sees it.
///
/// It is a plain [`std::future::Future`], resolved by the program itself (no runtime, no
/// clock), so it works inside the deterministic simulator: await it in a task given to
/// [`Program::spawn`] / [`Program::spawn_then`], which the program polls when it resolves, or
/// poll it from synchronous code with [`ReadFuture::try_take`]. Dropping it before it resolves
/// is allowed: the read then resolves into nothing.
pub struct ReadFuture<L> {
    slot: Rc<RefCell<ReadSlot<L>>>,
}

impl<L> ReadFuture<L> {
    /// Whether the threshold held (the value is waiting to be taken).
    pub fn is_ready(&self) -> bool {
        self.slot.borrow().value.is_some()
    }

    /// The state the read resolved to, if it has (taken once: later calls return `None`).
    pub fn try_take(&mut self) -> Option<L> {
        self.slot.borrow_mut().value.take()
    }
}

impl<L> Debug for ReadFuture<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadFuture(ready: {})", self.is_ready())
    }
}

impl<L> Future for ReadFuture<L> {
    type Output = L;
    /// Ready with the state once the threshold held; pending before (and after the value was
    /// taken).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<L> {
        let mut slot = self.slot.borrow_mut();
        match slot.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Program {
    // ----- reads ----------------------------------------------------------------------------

    /// Runs `f` once, as soon as `threshold` holds on `var` (at once if it already does):
    /// Lasp's blocking `read`, as a continuation.
    pub fn read<L, F>(&mut self, var: &Var<L>, threshold: Threshold<L>, f: F) -> Result<(), Error>
    where
        L: Lattice,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        threshold.validate()?;
        let i = self.slot(var.id())?;
        self.state(var)?;
        let check: Check = Box::new(move |s| {
            threshold
                .holds(downcast::<L>(s).expect("typed at registration"))
                .unwrap_or(false)
        });
        let f: OnceFn = Box::new(move |p, s| f(p, downcast::<L>(s).expect("typed")));
        self.vars[i].watches.push(Watch::Read { check, f });
        self.check_watches(i, false);
        self.run_ready();
        Ok(())
    }

    /// Lasp's blocking `read` as a future: resolves to the state of `var` at the first change
    /// where `threshold` holds (at once if it already does). The same read as
    /// [`Program::read`]; see [`ReadFuture`] for how to await it.
    ///
    /// ```
    /// use rasp_dataflow::update::inc;
    /// use rasp_dataflow::Program;
    /// use rasp_lattice::{GCounter, Query, Threshold};
    ///
    /// let mut p = Program::new(1);
    /// let c = p.declare::<GCounter>("c").unwrap();
    /// let read = p.read_async(&c, Threshold::strict_value(1)).unwrap();
    /// let c2 = c.clone();
    /// p.spawn_then(read, move |p, seen: GCounter| {
    ///     p.update(&c2, inc(10), 1).unwrap(); // act on the program when it resolves
    ///     assert_eq!(seen.query(), 2);
    /// });
    /// p.update(&c, inc(1), 1).unwrap();
    /// assert_eq!(p.query(&c).unwrap(), 1);
    /// p.update(&c, inc(1), 1).unwrap();
    /// assert_eq!(p.query(&c).unwrap(), 12);
    /// ```
    pub fn read_async<L>(
        &mut self,
        var: &Var<L>,
        threshold: Threshold<L>,
    ) -> Result<ReadFuture<L>, Error>
    where
        L: Lattice,
    {
        let slot = Rc::new(RefCell::new(ReadSlot {
            value: None,
            waker: None,
        }));
        let weak = Rc::downgrade(&slot);
        self.read(var, threshold, move |_, s: &L| {
            if let Some(slot) = weak.upgrade() {
                let waker = {
                    let mut slot = slot.borrow_mut();
                    slot.value = Some(s.clone());
                    slot.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            }
        })?;
        Ok(ReadFuture { slot })
    }

    /// Runs the future `fut` on this program, then `then` with its output and the program.
    /// The program is the executor: it polls the task once now and again whenever its waker
    /// is woken (a [`ReadFuture`] it awaits resolved), in spawn order, right after the
    /// continuations of the change that woke it. No runtime and no clock are involved, so
    /// tasks are deterministic in the simulator. Returns the task's id.
    pub fn spawn_then<T, Fut, G>(&mut self, fut: Fut, then: G) -> u64
    where
        T: 'static,
        Fut: Future<Output = T> + 'static,
        G: FnOnce(&mut Program, T) + 'static,
    {
        let id = self.next_task;
        self.next_task += 1;
        let fut = async move {
            let out = fut.await;
            Box::new(move |p: &mut Program| then(p, out)) as TaskDone
        };
        self.tasks.insert(
            id,
            Task {
                fut: Box::pin(fut),
                wake: Arc::new(TaskWake(AtomicBool::new(true))),
            },
        );
        self.run_ready();
        id
    }

    /// Runs the future `fut` on this program (see [`Program::spawn_then`]).
    pub fn spawn<Fut>(&mut self, fut: Fut) -> u64
    where
        Fut: Future<Output = ()> + 'static,
    {
        self.spawn_then(fut, |_, ()| {})
    }

    /// The number of spawned tasks not finished yet.
    pub fn pending_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Runs `f` after every change of `var`. Returns an id for [`Program::unsubscribe`].
    pub fn subscribe<L, F>(&mut self, var: &Var<L>, mut f: F) -> Result<u64, Error>
    where
        L: Lattice,
        F: FnMut(&mut Program, &L) + 'static,
    {
        let i = self.slot(var.id())?;
        self.state(var)?;
        let id = self.next_sub;
        self.next_sub += 1;
        let f: EveryFn = Box::new(move |p, s| f(p, downcast::<L>(s).expect("typed")));
        self.vars[i].watches.push(Watch::Every { id, f: Some(f) });
        Ok(id)
    }

    /// [`Program::subscribe`] by id, for code that knows a variable only by name (the HTTP
    /// API's long-polls and event streams): runs `f` with the erased state after every change
    /// of `id`, from inside the update or merge that changed it. `f` may call
    /// [`Program::unsubscribe`] with its own id (it then does not run again). Returns an id
    /// for [`Program::unsubscribe`]; an unknown or not-held variable is an error.
    pub fn subscribe_dyn<F>(&mut self, id: &str, f: F) -> Result<u64, Error>
    where
        F: FnMut(&mut Program, &dyn AnyLattice) + 'static,
    {
        let i = self.slot(id)?;
        let sub = self.next_sub;
        self.next_sub += 1;
        self.vars[i].watches.push(Watch::Every {
            id: sub,
            f: Some(Box::new(f)),
        });
        Ok(sub)
    }

    /// Stops a subscription (nothing happens for an id that is not subscribed, e.g. one
    /// already stopped). A subscription may stop itself from inside its callback.
    pub fn unsubscribe(&mut self, id: u64) {
        for v in &mut self.vars {
            v.watches
                .retain(|w| !matches!(w, Watch::Every { id: i, .. } if *i == id));
        }
    }

    /// How many subscriptions ([`Program::subscribe`], [`Program::subscribe_dyn`]) are
    /// registered now, over every variable: what shows that the ones of departed readers
    /// were stopped.
    pub fn subscriptions(&self) -> usize {
        self.vars
            .iter()
            .flat_map(|v| v.watches.iter())
            .filter(|w| matches!(w, Watch::Every { .. }))
            .count()
    }

    /// A trigger local to this replica, named `name`: runs `action` once when `threshold`
    /// holds on `var`, and never again on this replica (a trigger already recorded as fired,
    /// see [`Program::fired_triggers`], is not armed). Every replica whose program arms it
    /// runs the action, once each; to run an action once in the cluster, on one owner among
    /// the replicas that arm it, use [`crate::replica::Replica::trigger_once`] (which arms a
    /// guarded local trigger, [`Program::trigger_local_guarded`], on every armed node and
    /// lets ownership decide).
    pub fn trigger_local<L, F>(
        &mut self,
        name: &str,
        var: &Var<L>,
        threshold: Threshold<L>,
        action: F,
    ) -> Result<(), Error>
    where
        L: Lattice,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        self.arm_trigger(name, var, threshold, None, action)
    }

    /// Like [`Program::trigger_local`], but the trigger fires only when `guard` also holds on the
    /// program; it stays armed while the threshold holds and the guard does not. The guard is
    /// evaluated on every change of `var` and at [`Program::recheck_triggers`] (call it when
    /// something the guard reads outside the program changed). The replication layer uses it
    /// for ownership: "this node is the owner and the fired set lacks `name`".
    pub fn trigger_local_guarded<L, G, F>(
        &mut self,
        name: &str,
        var: &Var<L>,
        threshold: Threshold<L>,
        guard: G,
        action: F,
    ) -> Result<(), Error>
    where
        L: Lattice,
        G: Fn(&Program) -> bool + 'static,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        self.arm_trigger(name, var, threshold, Some(Box::new(guard)), action)
    }

    fn arm_trigger<L, F>(
        &mut self,
        name: &str,
        var: &Var<L>,
        threshold: Threshold<L>,
        guard: Option<Guard>,
        action: F,
    ) -> Result<(), Error>
    where
        L: Lattice,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        threshold.validate()?;
        if self.fired.contains(name) {
            return Ok(());
        }
        let i = self.slot(var.id())?;
        self.state(var)?;
        if self.vars[i]
            .watches
            .iter()
            .any(|w| matches!(w, Watch::Trigger { name: n, .. } if n == name))
        {
            return Err(Error::DuplicateTrigger(name.to_string()));
        }
        let check: Check = Box::new(move |s| {
            threshold
                .holds(downcast::<L>(s).expect("typed at registration"))
                .unwrap_or(false)
        });
        let f: OnceFn = Box::new(move |p, s| action(p, downcast::<L>(s).expect("typed")));
        self.vars[i].watches.push(Watch::Trigger {
            name: name.to_string(),
            check,
            guard,
            f,
        });
        self.check_watches(i, false);
        self.run_ready();
        Ok(())
    }

    /// Re-evaluates every armed trigger (threshold and guard) and runs those that now hold.
    pub fn recheck_triggers(&mut self) {
        for v in 0..self.vars.len() {
            if self.vars[v]
                .watches
                .iter()
                .any(|w| matches!(w, Watch::Trigger { .. }))
            {
                self.check_watches(v, false);
            }
        }
        self.run_ready();
    }

    /// Names of the triggers armed here that have not fired.
    pub fn armed_triggers(&self) -> BTreeSet<String> {
        self.vars
            .iter()
            .flat_map(|v| v.watches.iter())
            .filter_map(|w| match w {
                Watch::Trigger { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Names of the triggers that fired here (persist them to never fire twice across
    /// restarts; restore with [`Program::mark_fired`]).
    pub fn fired_triggers(&self) -> &BTreeSet<String> {
        &self.fired
    }

    /// The triggers whose action ran on this program (since it was built: a restarted
    /// replica starts a new list), in firing order; unlike [`Program::fired_triggers`], not
    /// those learnt fired from other replicas. The tools check "a trigger fires at most once
    /// per node" on it.
    pub fn trigger_firings(&self) -> &[String] {
        &self.firings
    }

    /// Records `name` as fired (a trigger of that name will not be armed).
    pub fn mark_fired(&mut self, name: &str) {
        self.fired.insert(name.to_string());
        for v in &mut self.vars {
            v.watches
                .retain(|w| !matches!(w, Watch::Trigger { name: n, .. } if n == name));
        }
    }

    /// Moves the watches of `v` whose condition holds to the ready list; subscriptions only
    /// when `v` changed (not when a new watch is registered).
    pub(super) fn check_watches(&mut self, v: usize, changed: bool) {
        let mut i = 0;
        while i < self.vars[v].watches.len() {
            let hit = match &self.vars[v].watches[i] {
                Watch::Read { check, .. } => check(&*self.vars[v].state),
                Watch::Trigger { check, guard, .. } => {
                    check(&*self.vars[v].state) && guard.as_ref().is_none_or(|g| g(self))
                }
                Watch::Every { id, .. } => {
                    if changed {
                        self.ready.push(Ready::Every(*id, v));
                    }
                    false
                }
            };
            if hit {
                match self.vars[v].watches.remove(i) {
                    Watch::Read { f, .. } => self.ready.push(Ready::Once(f, v)),
                    Watch::Trigger { name, f, .. } => {
                        self.firings.push(name.clone());
                        self.fired.insert(name);
                        self.ready.push(Ready::Once(f, v));
                    }
                    Watch::Every { .. } => unreachable!("subscriptions are never removed here"),
                }
            } else {
                i += 1;
            }
        }
    }

    /// Runs the continuations whose conditions became true, in order; they may update
    /// variables, which may make more ready.
    pub(super) fn run_ready(&mut self) {
        if self.running {
            return;
        }
        self.running = true;
        loop {
            self.run_ready_batches();
            let woken: Vec<u64> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.wake.0.swap(false, Ordering::SeqCst))
                .map(|(id, _)| *id)
                .collect();
            if woken.is_empty() {
                break;
            }
            for id in woken {
                let Some(mut task) = self.tasks.remove(&id) else {
                    continue;
                };
                let waker = Waker::from(task.wake.clone());
                let mut cx = Context::from_waker(&waker);
                match task.fut.as_mut().poll(&mut cx) {
                    Poll::Ready(done) => done(self),
                    Poll::Pending => {
                        self.tasks.insert(id, task);
                    }
                }
            }
        }
        self.running = false;
    }

    fn run_ready_batches(&mut self) {
        while !self.ready.is_empty() {
            let batch = std::mem::take(&mut self.ready);
            for r in batch {
                match r {
                    Ready::Once(f, v) => {
                        let state = self.vars[v].state.clone_box();
                        f(self, &*state);
                    }
                    Ready::Every(id, v) => {
                        let taken = self.vars[v].watches.iter_mut().find_map(|w| match w {
                            Watch::Every { id: i, f } if *i == id => f.take(),
                            _ => None,
                        });
                        if let Some(mut f) = taken {
                            let state = self.vars[v].state.clone_box();
                            f(self, &*state);
                            if let Some(Watch::Every { f: slot, .. }) = self.vars[v]
                                .watches
                                .iter_mut()
                                .find(|w| matches!(w, Watch::Every { id: i, .. } if *i == id))
                            {
                                *slot = Some(f);
                            }
                        }
                    }
                }
            }
        }
    }
}
