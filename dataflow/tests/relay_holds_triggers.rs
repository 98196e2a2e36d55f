//! A node that arms no trigger but whose interest names the trigger-ownership variables
//! (`__armed/<t>`, the fired set and the heartbeats, see the `replica` module docs) holds
//! them once it learns their declarations from an armed node's graph, so it can relay them
//! over a partial overlay (the ad counter's clients under HyParView).

use rasp_dataflow::program::{Interest, Program};
use rasp_dataflow::replica::{armed_id, Replica, ReplicaConfig, ALIVE_ID, FIRED_ID};
use rasp_lattice::{GCounter, Threshold};
use rasp_runtime::NodeId;

#[test]
fn relay_holds_the_trigger_variables_it_is_interested_in() {
    // The armed node: a counter and a trigger on it.
    let mut p = Program::new(0);
    let views = p.declare::<GCounter>("views").unwrap();
    let mut server = Replica::new(NodeId(0), ReplicaConfig::default(), p);
    server
        .trigger_once("t", &views, Threshold::value(3), |_, _| {})
        .unwrap();

    // The relay: it names every trigger variable in its interest and declares nothing of
    // its own; it learns the graph as from a neighbour's greeting.
    let ids = [armed_id("t"), FIRED_ID.to_string(), ALIVE_ID.to_string()];
    let interest = Interest::Only(ids.iter().cloned().collect());
    let program = Program::with_interest(1, interest);
    let mut relay = Replica::new(NodeId(1), ReplicaConfig::default(), program);
    for d in server.program().graph() {
        relay.program_mut().add_decl(d).unwrap();
    }
    for id in &ids {
        assert!(relay.program().holds(id), "the relay does not hold {id}");
    }
}
