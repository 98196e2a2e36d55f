//! The advertisement counter as one dataflow program (the talk's slide 44, PPDP'15 §6).
//!
//! ```text
//!  ads/rovio ─┐
//!             ├─ union ─ ads ─┐
//!  ads/riot ──┘               ├─ product ─ ads-contracts ─ filter(ad-has-contract) ─ ads-with-contracts
//!  contracts ─────────────────┘
//!  views/<ad>: one grow-only counter per ad
//!  rights/<ad>: in exact mode, one bounded counter per ad instead (its value: the rights used)
//! ```
//!
//! Every node builds the same program; which variables it holds is its [`Interest`]: servers
//! hold everything, clients only what they read (`ads-with-contracts`) and write (the
//! counters): Selective Hearing.

use rasp_dataflow::causal::DSet;
use rasp_dataflow::replica;
use rasp_dataflow::update::{add, grant, remove};
use rasp_dataflow::{Error, Func, Interest, Program, Var};
use rasp_lattice::{BCounter, GCounter, ORSet};
use std::collections::BTreeSet;

/// An ad, by name: `<vendor>/<n>`.
pub type Ad = String;

/// A contract, naming the ad it pays for.
pub type Contract = String;

/// The two vendors of the talk.
pub const VENDORS: [&str; 2] = ["rovio", "riot"];

/// The set clients read: (ad, contract) pairs whose contract is the ad's.
pub const ADS_WITH_CONTRACTS: &str = "ads-with-contracts";

/// Every ad's name for `per_vendor` ads per vendor.
pub fn ad_names(per_vendor: u32) -> Vec<Ad> {
    VENDORS
        .iter()
        .flat_map(|v| (0..per_vendor).map(move |i| format!("{v}/{i}")))
        .collect()
}

/// The vendor set of an ad (`ads/rovio` for `rovio/3`).
pub fn vendor_set(ad: &str) -> Var<ORSet<Ad>> {
    let vendor = ad.split('/').next().unwrap_or(ad);
    Var::named(&format!("ads/{vendor}"))
}

/// The counter of an ad.
pub fn views(ad: &str) -> Var<GCounter> {
    Var::named(&format!("views/{ad}"))
}

/// The bounded counter of an ad in exact mode (`--exact`): `threshold` rights granted by the
/// seeding server, moved to clients on request, one used per impression
/// ([`super::app::AdCounter`]).
pub fn rights(ad: &str) -> Var<BCounter> {
    Var::named(&format!("rights/{ad}"))
}

/// The counter variable id of `ad`: `rights/<ad>` in exact mode, `views/<ad>` otherwise.
pub fn counter_id(ad: &str, exact: bool) -> String {
    if exact {
        rights(ad).id().to_string()
    } else {
        views(ad).id().to_string()
    }
}

/// The filter's predicate, registered by name so every replica knows it.
fn ad_has_contract(pair: &(Ad, Contract)) -> bool {
    pair.0 == pair.1
}

/// Handles on the program's variables.
#[derive(Clone, Debug)]
pub struct AdVars {
    /// The sets clients read.
    pub ads_with_contracts: Var<DSet<(Ad, Contract)>>,
    /// The contracts.
    pub contracts: Var<ORSet<Contract>>,
    /// Every ad's name.
    pub ads: Vec<Ad>,
}

impl AdVars {
    /// The handles for `per_vendor` ads per vendor (by name: they name the variables
    /// [`build`] declares).
    pub fn of(per_vendor: u32) -> Self {
        AdVars {
            ads_with_contracts: Var::named(ADS_WITH_CONTRACTS),
            contracts: Var::named("contracts"),
            ads: ad_names(per_vendor),
        }
    }
}

/// Declares the program on `p`: vendor sets → union → product with contracts → filter, and
/// one counter per ad (a grow-only counter, or a bounded counter when `exact`). The same code
/// on every node.
pub fn build(p: &mut Program, per_vendor: u32, exact: bool) -> Result<AdVars, Error> {
    let rovio = p.declare::<ORSet<Ad>>("ads/rovio")?;
    let riot = p.declare::<ORSet<Ad>>("ads/riot")?;
    let contracts = p.declare::<ORSet<Contract>>("contracts")?;
    let ads = p.union::<Ad, _, _>("ads", &rovio, &riot)?;
    let pairs = p.product::<Ad, Contract, _, _>("ads-contracts", &ads, &contracts)?;
    let ads_with_contracts = p.filter(
        ADS_WITH_CONTRACTS,
        &pairs,
        Func::new("ad-has-contract", ad_has_contract),
    )?;
    let names = ad_names(per_vendor);
    for ad in &names {
        if exact {
            p.declare::<BCounter>(rights(ad).id())?;
        } else {
            p.declare::<GCounter>(views(ad).id())?;
        }
    }
    Ok(AdVars {
        ads_with_contracts,
        contracts,
        ads: names,
    })
}

/// What a client holds: the set it reads and the counters it writes (`rights/<ad>` when
/// `exact`, else `views/<ad>`).
pub fn client_interest(per_vendor: u32, exact: bool) -> Interest {
    let mut ids: BTreeSet<String> = ad_names(per_vendor)
        .iter()
        .map(|a| counter_id(a, exact))
        .collect();
    ids.insert(ADS_WITH_CONTRACTS.to_string());
    Interest::Only(ids)
}

/// What a client holds over a partial overlay (HyParView): what it reads and writes, plus
/// the sources (`ads/rovio`, `ads/riot`, `contracts`) and the trigger-ownership variables
/// (`__armed/remove/<ad>`, the fired set `__fired` and the servers' heartbeats `__alive`, see
/// [`rasp_dataflow::replica`]), which it only relays: the derived sets `ads` and `ads-contracts`
/// (the product, the largest state) stay on the servers, and `ads-with-contracts` is not
/// computed on the client because its input is not held there. Under client-server
/// membership servers are neighbours of each other and of every client, so clients need
/// only [`client_interest`]; in full membership every node is every node's neighbour.
pub fn relay_interest(per_vendor: u32, exact: bool) -> Interest {
    let Interest::Only(mut ids) = client_interest(per_vendor, exact) else {
        unreachable!("client_interest is Only");
    };
    for v in VENDORS {
        ids.insert(format!("ads/{v}"));
    }
    ids.insert("contracts".into());
    for ad in ad_names(per_vendor) {
        ids.insert(replica::armed_id(&format!("remove/{ad}")));
    }
    ids.insert(replica::FIRED_ID.to_string());
    ids.insert(replica::ALIVE_ID.to_string());
    Interest::Only(ids)
}

/// Adds every ad to its vendor set and one contract per ad (done once, by the first server:
/// see [`super::app::AdCounter`]).
/// In exact mode (`rights = Some(threshold)`) it also grants itself `threshold` rights on
/// every ad's bounded counter: the bound the clients draw from.
pub fn seed_ads(p: &mut Program, vars: &AdVars, rights: Option<u64>) -> Result<(), Error> {
    let actor = p.actor();
    for ad in &vars.ads {
        p.update(&vendor_set(ad), add(ad.clone()), actor)?;
        p.update(&vars.contracts, add(ad.clone()), actor)?;
        if let Some(n) = rights {
            p.update(&self::rights(ad), grant(n), actor)?;
        }
    }
    Ok(())
}

/// Removes `ad` from its vendor set (the trigger's action). Idempotent: removing it again,
/// here or on another server, changes nothing more once the removals have joined (an
/// observed-remove set removes the tags it saw). That is what makes the trigger's guarantee
/// enough for the ad counter: two sides of a partition (or a takeover after a crash that
/// lost an unshipped firing) may each run it once, with the effect of one removal.
pub fn remove_ad(p: &mut Program, ad: &str) -> Result<bool, Error> {
    let actor = p.actor();
    p.update(&vendor_set(ad), remove(ad.to_string()), actor)
}

/// The ads a replica currently sees in `ads-with-contracts`.
pub fn visible_ads(p: &Program, vars: &AdVars) -> Result<BTreeSet<Ad>, Error> {
    Ok(p.query(&vars.ads_with_contracts)?
        .into_iter()
        .map(|(ad, _)| ad)
        .collect())
}
