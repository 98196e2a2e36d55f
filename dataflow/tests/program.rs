//! The engine's contract: declarations, operators, reads, triggers, graph shipping, interest.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use rasp_dataflow::causal::DSet;
use rasp_dataflow::fold::{Count, Folded, Sum};
use rasp_dataflow::update::{add, inc, remove};
use rasp_dataflow::{Error, Func, Interest, Program, Var};
use rasp_lattice::{GCounter, Lattice, ORSet, Threshold};

fn set<T: Ord + Clone>(xs: &[T]) -> BTreeSet<T> {
    xs.iter().cloned().collect()
}

#[test]
fn chain_of_operators_tracks_updates() {
    let mut p = Program::new(1);
    let a = p.declare::<ORSet<i64>>("a").unwrap();
    let b = p.declare::<ORSet<i64>>("b").unwrap();
    let u = p.union("u", &a, &b).unwrap();
    let m = p
        .map("m", &u, Func::new("double", |x: &i64| x * 2))
        .unwrap();
    let f = p
        .filter("f", &m, Func::new("big", |x: &i64| *x >= 4))
        .unwrap();
    let i = p.intersection("i", &a, &b).unwrap();
    let pr = p.product("p", &i, &b).unwrap();
    let s = p.fold::<i64, _, Sum>("s", &u).unwrap();
    let n = p.fold::<(i64, i64), _, Count>("n", &pr).unwrap();

    p.update(&a, add(1), 1).unwrap();
    p.update(&a, add(2), 1).unwrap();
    p.update(&b, add(2), 2).unwrap();
    p.update(&b, add(3), 2).unwrap();
    assert_eq!(p.query(&u).unwrap(), set(&[1, 2, 3]));
    assert_eq!(p.query(&m).unwrap(), set(&[2, 4, 6]));
    assert_eq!(p.query(&f).unwrap(), set(&[4, 6]));
    assert_eq!(p.query(&i).unwrap(), set(&[2]));
    assert_eq!(p.query(&pr).unwrap(), set(&[(2, 2), (2, 3)]));
    assert_eq!(p.query(&s).unwrap(), 6);
    assert_eq!(p.query(&n).unwrap(), 2);

    // A removal flows through every operator.
    p.update(&b, remove(2), 2).unwrap();
    assert_eq!(p.query(&u).unwrap(), set(&[1, 2, 3]), "2 is still in a");
    assert_eq!(p.query(&i).unwrap(), set(&[]));
    assert_eq!(p.query(&pr).unwrap(), set(&[]));
    assert_eq!(p.query(&n).unwrap(), 0);
    p.update(&a, remove(2), 1).unwrap();
    assert_eq!(p.query(&u).unwrap(), set(&[1, 3]));
    assert_eq!(p.query(&f).unwrap(), set(&[6]));
    assert_eq!(p.query(&s).unwrap(), 4);
}

#[test]
fn declarations_are_checked() {
    let mut p = Program::new(1);
    let a = p.declare::<ORSet<i64>>("a").unwrap();
    // Same id, same type: the same variable.
    let a2 = p.declare::<ORSet<i64>>("a").unwrap();
    p.update(&a, add(7), 1).unwrap();
    assert_eq!(p.query(&a2).unwrap(), set(&[7]));
    // Same id, other type: an error naming both types.
    let e = p.declare::<GCounter>("a").unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("ORSet") && e.to_string().contains("GCounter"));
    // Unknown inputs, same input twice, updates of derived variables.
    let ghost = rasp_dataflow::program::Program::new(9)
        .declare::<ORSet<i64>>("ghost")
        .unwrap();
    assert!(matches!(
        p.union("u", &a, &ghost),
        Err(Error::UnknownVar(_))
    ));
    assert!(matches!(p.union("u", &a, &a), Err(Error::SameInputs(_))));
    let m = p.map("m", &a, Func::new("id", |x: &i64| *x)).unwrap();
    assert!(matches!(
        p.update(&m, |s: &DSet<i64>, _| s.clone(), 1),
        Err(Error::Derived(_))
    ));
}

#[test]
fn cycles_are_rejected() {
    let mut p = Program::new(1);
    let a = p.declare::<DSet<i64>>("a").unwrap();
    let b = p.map("b", &a, Func::new("inc", |x: &i64| x + 1)).unwrap();
    let c = p.map("c", &b, Func::new("inc", |x: &i64| x + 1)).unwrap();
    // a := map(c) would close a → b → c → a.
    let e = p
        .map("a", &c, Func::new("inc", |x: &i64| x + 1))
        .unwrap_err();
    assert!(matches!(e, Error::Cycle { .. }), "{e}");
    assert!(e.to_string().contains("cycle"));
    // Self-loop.
    let d = p.declare::<DSet<i64>>("d").unwrap();
    assert!(matches!(
        p.map("d", &d, Func::new("inc", |x: &i64| x + 1)),
        Err(Error::Cycle { .. })
    ));
    // Attaching an operator to a declared variable without a cycle is fine.
    let e2 = p.declare::<DSet<i64>>("e").unwrap();
    p.map("e", &b, Func::new("inc", |x: &i64| x + 1)).unwrap();
    p.bind(&a, &{
        let mut s = ORSet::<i64>::bottom();
        s.add(1, 10);
        rasp_dataflow::causal::CausalSet::lift(&s, a.tag())
    })
    .unwrap();
    assert_eq!(p.query(&e2).unwrap(), set(&[12]));
}

#[test]
fn threshold_reads_fire_exactly_when_the_threshold_holds() {
    let mut p = Program::new(1);
    let c = p.declare::<GCounter>("clicks").unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    p.read(&c, Threshold::value(3), move |_, v: &GCounter| {
        s.borrow_mut().push(rasp_lattice::Query::query(v))
    })
    .unwrap();
    p.update(&c, inc(1), 1).unwrap();
    p.update(&c, inc(1), 2).unwrap();
    assert!(seen.borrow().is_empty(), "2 < 3: still blocked");
    p.update(&c, inc(1), 1).unwrap();
    assert_eq!(*seen.borrow(), vec![3], "unblocked at exactly 3");
    p.update(&c, inc(5), 1).unwrap();
    assert_eq!(*seen.borrow(), vec![3], "a read fires once");
    // Already holding: fires at once.
    let s = seen.clone();
    p.read(&c, Threshold::value(1), move |_, v: &GCounter| {
        s.borrow_mut().push(rasp_lattice::Query::query(v))
    })
    .unwrap();
    assert_eq!(*seen.borrow(), vec![3, 8]);
    // A numeric threshold on a set is a clear error at registration.
    let set = p.declare::<ORSet<i64>>("set").unwrap();
    assert!(p.read(&set, Threshold::Value(1), |_, _| {}).is_err());
}

#[test]
fn triggers_fire_once_and_can_update_the_program() {
    // The ad counter's server in miniature: at 3 impressions remove the ad.
    let mut p = Program::new(1);
    let ads = p.declare::<ORSet<String>>("ads").unwrap();
    let views = p.declare::<GCounter>("views/a").unwrap();
    p.update(&ads, add("a".to_string()), 1).unwrap();
    p.update(&ads, add("b".to_string()), 1).unwrap();
    let fired = Rc::new(RefCell::new(0));
    let f = fired.clone();
    let ads2 = ads.clone();
    p.trigger_local("remove a", &views, Threshold::value(3), move |p, _| {
        *f.borrow_mut() += 1;
        p.update(&ads2, remove("a".to_string()), 1).unwrap();
    })
    .unwrap();
    for _ in 0..10 {
        p.update(&views, inc(1), 2).unwrap();
    }
    assert_eq!(*fired.borrow(), 1);
    assert_eq!(p.query(&ads).unwrap(), set(&["b".to_string()]));
    assert!(p.fired_triggers().contains("remove a"));
    // Re-arming a fired trigger does nothing (never twice on a replica).
    let f = fired.clone();
    p.trigger_local("remove a", &views, Threshold::value(3), move |_, _| {
        *f.borrow_mut() += 1
    })
    .unwrap();
    assert_eq!(*fired.borrow(), 1);
}

#[test]
fn subscriptions_see_every_change() {
    let mut p = Program::new(1);
    let a = p.declare::<ORSet<i64>>("a").unwrap();
    let m = p.map("m", &a, Func::new("neg", |x: &i64| -x)).unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let id = p
        .subscribe(&m, move |_, s: &DSet<i64>| {
            l.borrow_mut().push(rasp_lattice::Query::query(s))
        })
        .unwrap();
    p.update(&a, add(1), 1).unwrap();
    p.update(&a, add(1), 1).unwrap(); // re-add: a new dot, still a change
    p.update(&a, add(2), 1).unwrap();
    p.unsubscribe(id);
    p.update(&a, add(3), 1).unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2], set(&[-2, -1]));
}

/// Subscriptions by id: woken by local updates and by merges of another replica's state,
/// counted, stopped from outside or from inside their own callback.
#[test]
fn erased_subscriptions_see_updates_and_merges_and_stop() {
    let mut p = Program::new(1);
    let n = p.declare::<GCounter>("n").unwrap();
    let mut other = Program::new(2);
    let n2 = other.declare::<GCounter>("n").unwrap();
    assert!(matches!(
        p.subscribe_dyn("nope", |_, _| {}),
        Err(Error::UnknownVar(_))
    ));
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let every = p
        .subscribe_dyn("n", move |_, s| l.borrow_mut().push(s.type_name()))
        .unwrap();
    // One that stops itself at its second change.
    let own = Rc::new(std::cell::Cell::new(None));
    let (o, seen) = (own.clone(), Rc::new(std::cell::Cell::new(0)));
    let s2 = seen.clone();
    let once = p
        .subscribe_dyn("n", move |p, _| {
            s2.set(s2.get() + 1);
            if s2.get() == 2 {
                p.unsubscribe(o.get().unwrap());
            }
        })
        .unwrap();
    own.set(Some(once));
    assert_eq!(p.subscriptions(), 2);
    p.update(&n, inc(1), 1).unwrap();
    other.update(&n2, inc(5), 2).unwrap();
    let bytes = rasp_lattice::encode(other.state(&n2).unwrap()).unwrap();
    assert!(p.apply_encoded("n", &bytes).unwrap());
    assert!(!p.apply_encoded("n", &bytes).unwrap(), "no change, no call");
    assert_eq!(seen.get(), 2);
    assert_eq!(p.subscriptions(), 1, "the second stopped itself");
    p.update(&n, inc(1), 1).unwrap();
    assert_eq!(seen.get(), 2);
    assert_eq!(log.borrow().len(), 3, "two updates and one merge");
    assert!(log.borrow()[0].contains("GCounter"));
    p.unsubscribe(every);
    p.unsubscribe(every);
    assert_eq!(p.subscriptions(), 0);
    p.update(&n, inc(1), 1).unwrap();
    assert_eq!(log.borrow().len(), 3);
}

/// The program graph is data: a replica that receives the declarations (in any order)
/// instantiates the operators it has the functions for, over the inputs it holds.
#[test]
fn graph_ships_between_replicas() {
    let build = |p: &mut Program| {
        let a = p.declare::<ORSet<i64>>("a").unwrap();
        let b = p.declare::<ORSet<i64>>("b").unwrap();
        let u = p.union("u", &a, &b).unwrap();
        p.filter("even", &u, Func::new("even", |x: &i64| x % 2 == 0))
            .unwrap();
    };
    let mut server = Program::new(1);
    build(&mut server);
    let mut decls = server.graph();
    decls.reverse(); // out of order: operators before their inputs

    // A replica that has not seen the code's types keeps declarations as data only.
    let mut bare = Program::new(2);
    for d in decls.clone() {
        bare.add_decl(d).unwrap();
    }
    assert!(!bare.holds("u"));
    assert_eq!(bare.graph(), server.graph());

    // A replica of the same binary (it knows the functions) instantiates everything.
    let mut other = Program::new(3);
    other.use_functions(&server.functions());
    for d in decls.clone() {
        assert!(other.add_decl(d).unwrap());
    }
    assert!(other.computes("u") && other.computes("even"));
    let a = other.declare::<ORSet<i64>>("a").unwrap();
    let b = other.declare::<ORSet<i64>>("b").unwrap();
    other.update(&a, add(1), 3).unwrap();
    other.update(&b, add(2), 3).unwrap();
    assert_eq!(other.show("even").unwrap(), "{2}");
    // The late-comer `bare` learns the functions: the graph it kept comes alive.
    bare.use_functions(&server.functions());
    assert!(bare.computes("even"));
    // Identical declarations change nothing.
    let mut replica = Program::new(4);
    build(&mut replica);
    for d in decls {
        assert!(!replica.add_decl(d).unwrap());
    }
    // A conflicting remote declaration is an error.
    let mut bad = server.graph().into_iter().find(|d| d.id == "u").unwrap();
    bad.type_name = "something else".into();
    assert!(replica.add_decl(bad).is_err());
}

/// A client holds only what it reads: no operator runs there, the derived variable is fed by
/// joining states computed elsewhere.
#[test]
fn clients_hold_only_their_interest() {
    let build = |p: &mut Program| {
        let a = p.declare::<ORSet<i64>>("a").unwrap();
        let m = p.map("m", &a, Func::new("sq", |x: &i64| x * x)).unwrap();
        (a, m)
    };
    let mut server = Program::new(1);
    let (a, m) = build(&mut server);
    let mut client = Program::with_interest(2, Interest::Only(set(&["m".to_string()])));
    let (ca, cm) = build(&mut client);
    assert!(client.holds("m") && !client.holds("a") && !client.computes("m"));
    assert!(matches!(client.query(&ca), Err(Error::NotHeld(_))));
    server.update(&a, add(3), 1).unwrap();
    server.update(&a, add(4), 1).unwrap();
    let bytes = rasp_lattice::encode(server.state(&m).unwrap()).unwrap();
    assert!(client.apply_encoded("m", &bytes).unwrap());
    assert_eq!(client.query(&cm).unwrap(), set(&[9, 16]));
    // Garbage is an error and changes nothing.
    assert!(client.apply_encoded("m", b"\xc1garbage").is_err());
    assert_eq!(client.query(&cm).unwrap(), set(&[9, 16]));
    // Interest can grow.
    client.hold("a");
    assert!(client.holds("a") && client.computes("m"));
}

#[test]
fn folded_value_supports_value_thresholds() {
    let mut p = Program::new(1);
    let a = p.declare::<ORSet<i64>>("a").unwrap();
    let s = p.fold::<i64, _, Sum>("s", &a).unwrap();
    let hit = Rc::new(RefCell::new(None));
    let h = hit.clone();
    p.read(&s, Threshold::Value(10), move |_, v: &Folded<i64, Sum>| {
        *h.borrow_mut() = Some(rasp_lattice::Query::query(v))
    })
    .unwrap();
    p.update(&a, add(4), 1).unwrap();
    p.update(&a, add(5), 1).unwrap();
    assert_eq!(*hit.borrow(), None);
    p.update(&a, add(1), 1).unwrap();
    assert_eq!(*hit.borrow(), Some(10));
}

/// A graph learnt from a peer is untrusted: a long chain of declarations sent in reverse
/// order (every one parked until its input arrives) must not recurse once per link (a
/// stack overflow aborts the node), and a peer cannot make a replica hold an unbounded
/// graph or oversized declarations.
#[test]
fn a_hostile_graph_is_bounded_and_never_overflows_the_stack() {
    use rasp_dataflow::program::{MAX_DECL_BYTES, MAX_GRAPH, MAX_PARKED};
    use rasp_dataflow::{Decl, OpDecl, OpKind};
    let link = |i: usize| Decl {
        id: format!("c{i}"),
        type_name: "t".into(),
        op: Some(OpDecl {
            kind: OpKind::Map,
            inputs: vec![format!("c{}", i - 1)],
            func: Some("f".into()),
        }),
    };
    let source = Decl {
        id: "c0".into(),
        type_name: "t".into(),
        op: None,
    };
    // A legitimate chain, as long as the parked bound allows, in the worst order: it all
    // resolves, without one stack frame per link.
    let n = MAX_PARKED;
    let mut p = Program::new(1);
    for i in (1..=n).rev() {
        assert!(p.add_decl(link(i)).unwrap());
    }
    assert!(p.add_decl(source.clone()).unwrap());
    assert_eq!(p.graph().len(), n + 1);
    // More parked declarations than the bound: refused with an error, nothing else lost.
    let mut p = Program::new(2);
    let mut refused = 0;
    for i in (1..=2 * MAX_PARKED).rev() {
        match p.add_decl(link(i)) {
            Ok(_) => {}
            Err(Error::GraphLimit(_)) => refused += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(refused, MAX_PARKED);
    // A graph larger than the bound: the rest is refused.
    let mut p = Program::new(3);
    p.add_decl(source).unwrap();
    let mut refused = 0;
    for i in 1..=MAX_GRAPH + 10 {
        if let Err(e) = p.add_decl(link(i)) {
            assert!(matches!(e, Error::GraphLimit(_)), "{e}");
            refused += 1;
        }
    }
    assert_eq!(refused, 11);
    assert_eq!(p.graph().len(), MAX_GRAPH);
    // Oversized declarations and too many inputs are refused.
    let mut p = Program::new(4);
    let big = Decl {
        id: "x".repeat(MAX_DECL_BYTES + 1),
        type_name: "t".into(),
        op: None,
    };
    assert!(matches!(p.add_decl(big), Err(Error::GraphLimit(_))));
    let wide = Decl {
        id: "w".into(),
        type_name: "t".into(),
        op: Some(OpDecl {
            kind: OpKind::Union,
            inputs: (0..100).map(|i| format!("i{i}")).collect(),
            func: None,
        }),
    };
    assert!(matches!(p.add_decl(wide), Err(Error::GraphLimit(_))));
    assert!(p.graph().is_empty());
}

/// `bind_to` copies a source or a derived variable, incrementally, keeps a pre-declared
/// target's state, refuses direct updates and type mismatches, and ships with the graph to a
/// replica that knows only the type.
#[test]
fn bind_to_copies_sources_and_derived_variables() {
    use rasp_dataflow::update::{add_all, remove_all};
    let mut p = Program::new(1);
    let a = p.declare::<ORSet<i64>>("a").unwrap();
    let sq = p.map("sq", &a, Func::new("sq", |x: &i64| x * x)).unwrap();
    p.update(&a, add(2), 1).unwrap();
    // A declared, unwritten target is accepted; a written one is refused (its dots would
    // clash with the source's).
    p.declare::<ORSet<i64>>("copy").unwrap();
    let copy = p.bind_to("copy", &a).unwrap();
    let written = p.declare::<ORSet<i64>>("written").unwrap();
    p.update(&written, add(100), 1).unwrap();
    assert!(matches!(
        p.bind_to("written", &a),
        Err(Error::BindTargetWritten(_))
    ));
    let sq_copy = p.bind_to("sq-copy", &sq).unwrap();
    assert_eq!(p.query(&copy).unwrap(), set(&[2]));
    assert_eq!(p.query(&sq_copy).unwrap(), set(&[4]));
    p.update(&a, add_all([3, 4]), 1).unwrap();
    p.update(&a, remove_all([2]), 1).unwrap();
    assert_eq!(p.query(&copy).unwrap(), set(&[3, 4]));
    assert_eq!(p.query(&sq_copy).unwrap(), set(&[9, 16]));
    assert!(matches!(p.update(&copy, add(5), 1), Err(Error::Derived(_))));
    // A copy can feed operators like any variable, and copies chain.
    let c2 = p.bind_to("copy-of-copy", &copy).unwrap();
    assert_eq!(p.query(&c2).unwrap(), set(&[3, 4]));
    // Type mismatches and cycles are refused.
    p.declare::<GCounter>("n").unwrap();
    assert!(matches!(
        p.bind_to("n", &a),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(p.bind_to("a", &c2).is_err(), "a cycle");
    // The declaration ships: a replica that knows only the type runs the copy.
    let mut other = Program::new(2);
    other.know_type(rasp_dataflow::erased::TypeOps::of::<ORSet<i64>>());
    for d in p.graph() {
        other.add_decl(d).unwrap();
    }
    assert!(other.computes("copy") && other.computes("copy-of-copy"));
    assert!(!other.computes("sq-copy"), "sq's function is unknown there");
    let oa = Var::<ORSet<i64>>::named("a");
    other.update(&oa, add(7), 2).unwrap();
    assert_eq!(
        other
            .query(&Var::<ORSet<i64>>::named("copy-of-copy"))
            .unwrap(),
        set(&[7])
    );
}

/// `read_async`: a future resolved by the program when the threshold holds; tasks spawned on
/// the program await several reads in sequence and then act on the program.
#[test]
fn awaitable_reads_resolve_when_the_threshold_holds() {
    let mut p = Program::new(1);
    let c = p.declare::<GCounter>("c").unwrap();
    let s = p.declare::<ORSet<i64>>("s").unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (r1, r2) = (
        p.read_async(&c, Threshold::strict_value(2)).unwrap(),
        p.read_async(&s, Threshold::strict_cardinality(1)).unwrap(),
    );
    let l = log.clone();
    let id = p.spawn_then(
        async move {
            let a = r1.await;
            l.borrow_mut().push(format!("c={}", a.total()));
            let b = r2.await;
            l.borrow_mut().push(format!("s={}", b.len()));
            (a.total(), b.len())
        },
        move |p, (a, b)| {
            p.update(&Var::<GCounter>::named("done"), inc(a + b as u64), 1)
                .unwrap();
        },
    );
    assert_eq!(id, 0);
    p.declare::<GCounter>("done").unwrap();
    assert_eq!(p.pending_tasks(), 1);
    // Adding to s first: r2 resolves, but the task is still waiting on r1.
    p.update(&s, add(1), 1).unwrap();
    p.update(&s, add(2), 1).unwrap();
    assert!(log.borrow().is_empty());
    p.update(&c, inc(2), 1).unwrap();
    assert!(log.borrow().is_empty(), "2 is not > 2");
    p.update(&c, inc(1), 1).unwrap();
    assert_eq!(*log.borrow(), vec!["c=3".to_string(), "s=2".to_string()]);
    assert_eq!(p.pending_tasks(), 0);
    assert_eq!(p.query(&Var::<GCounter>::named("done")).unwrap(), 5);
    // A read that already holds is ready at once; polled from synchronous code.
    let mut now = p.read_async(&c, Threshold::value(1)).unwrap();
    assert!(now.is_ready());
    assert_eq!(now.try_take().map(|c| c.total()), Some(3));
    assert!(now.try_take().is_none());
    // Dropping an unresolved read is harmless.
    drop(p.read_async(&c, Threshold::value(100)).unwrap());
    p.update(&c, inc(200), 1).unwrap();
    // Unsupported thresholds are refused up front, as for the continuation form.
    assert!(p.read_async(&s, Threshold::StrictValue(1)).is_err());
}

/// A compiled program instantiates into a program that behaves as the one it was taken
/// from: the same values after the same updates, from any number of instances (on any
/// thread); a program holding a subscription is not compiled.
#[test]
fn a_compiled_program_instantiates_to_the_same_program() {
    fn graph(p: &mut Program) -> (Var<ORSet<i64>>, Var<ORSet<i64>>) {
        let a = p.declare::<ORSet<i64>>("a").unwrap();
        let b = p.declare::<ORSet<i64>>("b").unwrap();
        let u = p.union("u", &a, &b).unwrap();
        let m = p
            .map("m", &u, Func::new("double", |x: &i64| x * 2))
            .unwrap();
        p.filter("f", &m, Func::new("big", |x: &i64| *x >= 4))
            .unwrap();
        let i = p.intersection("i", &a, &b).unwrap();
        p.product("p", &i, &b).unwrap();
        p.fold::<i64, _, Sum>("s", &u).unwrap();
        (a, b)
    }
    let run = |p: &mut Program, a: &Var<ORSet<i64>>, b: &Var<ORSet<i64>>| {
        p.update(a, add(1), 1).unwrap();
        p.update(a, add(2), 1).unwrap();
        p.update(b, add(2), 2).unwrap();
        p.update(b, remove(2), 2).unwrap();
        p.update(b, add(3), 2).unwrap();
        p.held()
            .into_iter()
            .map(|id| (id.clone(), p.show(&id).unwrap()))
            .collect::<Vec<_>>()
    };
    let mut fresh = Program::with_interest(7, Interest::All);
    let (a, b) = graph(&mut fresh);
    assert_eq!(fresh.graph().len(), 8);
    let compiled = fresh.compile().expect("no closures yet");
    assert_eq!(compiled.actor(), 7);
    assert_eq!(compiled.interest(), &Interest::All);
    let want = run(&mut fresh, &a, &b);
    assert_eq!(want.len(), 8);
    let shared = std::sync::Arc::new(compiled);
    let on_thread = {
        let c = shared.clone();
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || run(&mut c.instantiate(), &a, &b))
            .join()
            .unwrap()
    };
    assert_eq!(on_thread, want);
    for _ in 0..2 {
        let mut p = shared.instantiate();
        assert_eq!(p.graph(), fresh.graph());
        assert_eq!(run(&mut p, &a, &b), want);
    }
    let mut watched = shared.instantiate();
    watched.subscribe(&a, |_, _| {}).unwrap();
    assert!(
        watched.compile().is_none(),
        "a subscription holds a closure"
    );
}
