//! The actor's Kademlia side: DHT commands from handles, provider searches
//! and lookups in flight, and the routing table view. The state lives in
//! [`EventLoop`]; this module only adds the methods that drive it.

use libp2p::{kad, PeerId};
use tokio::sync::mpsc;

use super::{EventLoop, MAX_PENDING_LOOKUPS};
use crate::{
    handle::{Bucket, Command, DhtInfo, Lookup},
    peers::MAX_ADDRS_PER_PEER,
};

/// Most provider searches in flight at once.
const MAX_PROVIDER_SEARCHES: usize = 128;
/// Most providers handed out per search.
const MAX_PROVIDERS_PER_SEARCH: usize = 64;

pub(super) struct ProviderSearch {
    found: mpsc::Sender<PeerId>,
    seen: std::collections::HashSet<PeerId>,
}

impl EventLoop {
    /// DHT commands from handles.
    pub(super) fn on_dht_command(&mut self, command: Command) {
        match command {
            Command::FindPeer { peer, reply } => {
                if self.pending_lookups.len() >= MAX_PENDING_LOOKUPS {
                    // Dropping the reply tells the caller the service is busy.
                    tracing::warn!("too many DHT lookups in flight; refusing one");
                    return;
                }
                let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                self.pending_lookups.insert(id, (peer, reply));
            }
            Command::Provide { key, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(kad::RecordKey::new(&key))
                    .map(|_| ())
                    .map_err(|e| format!("cannot announce: {e}"));
                let _ = reply.send(result);
            }
            Command::StopProviding { key } => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&kad::RecordKey::new(&key));
            }
            Command::FindProviders { key, found } => {
                if self.provider_searches.len() >= MAX_PROVIDER_SEARCHES {
                    tracing::warn!("too many provider searches in flight; refusing one");
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(kad::RecordKey::new(&key));
                self.provider_searches.insert(
                    id,
                    ProviderSearch {
                        found,
                        seen: Default::default(),
                    },
                );
            }
            _ => {}
        }
    }

    /// Hands a provider to its search, resolving its addresses first if the
    /// swarm cannot dial it yet.
    pub(super) fn deliver_provider(&mut self, provider: PeerId, found: mpsc::Sender<PeerId>) {
        let known = self.swarm.is_connected(&provider)
            || self
                .swarm
                .behaviour_mut()
                .kad
                .kbucket(provider)
                .is_some_and(|b| b.iter().any(|e| *e.node.key.preimage() == provider));
        if known {
            let _ = found.try_send(provider);
        } else if self.resolving.len() < MAX_PROVIDER_SEARCHES * 4 {
            let id = self.swarm.behaviour_mut().kad.get_closest_peers(provider);
            self.resolving.insert(id, (provider, found));
        }
    }

    pub(super) fn dht_info(&mut self) -> DhtInfo {
        let kad = &mut self.swarm.behaviour_mut().kad;
        let mode = match kad.mode() {
            kad::Mode::Server => "server",
            kad::Mode::Client => "client",
        };
        let mut buckets = Vec::new();
        for bucket in kad.kbuckets() {
            if bucket.num_entries() == 0 {
                continue;
            }
            let index = bucket.range().0.ilog2().unwrap_or(0);
            let peers = bucket.iter().map(|e| *e.node.key.preimage()).collect();
            buckets.push(Bucket { index, peers });
        }
        let size = buckets.iter().map(|b| b.peers.len()).sum();
        DhtInfo {
            mode,
            size,
            buckets,
        }
    }

    pub(super) fn random_walk(&mut self) {
        if self.swarm.behaviour_mut().dht_size() > 0 {
            self.swarm
                .behaviour_mut()
                .kad
                .get_closest_peers(PeerId::random());
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetProviders(result),
                step,
                ..
            } => {
                let me = *self.swarm.local_peer_id();
                let mut deliver = Vec::new();
                if let Some(search) = self.provider_searches.get_mut(&id) {
                    if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
                        for p in providers {
                            if p != me
                                && search.seen.len() < MAX_PROVIDERS_PER_SEARCH
                                && search.seen.insert(p)
                            {
                                deliver.push((p, search.found.clone()));
                            }
                        }
                    }
                }
                if step.last {
                    // Dropping the sender closes the channel once every
                    // pending address resolution has finished too.
                    self.provider_searches.remove(&id);
                }
                for (p, found) in deliver {
                    self.deliver_provider(p, found);
                }
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                stats,
                ..
            } => {
                if let Some((provider, found)) = self.resolving.remove(&id) {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    if let Some(info) = peers.into_iter().find(|p| p.peer_id == provider) {
                        for addr in info.addrs.into_iter().take(MAX_ADDRS_PER_PEER) {
                            self.swarm.add_peer_address(provider, addr);
                        }
                        let _ = found.try_send(provider);
                    }
                    return;
                }
                let Some((target, reply)) = self.pending_lookups.remove(&id) else {
                    return;
                };
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let hit = peers.into_iter().find(|p| p.peer_id == target);
                let _ = reply.send(Lookup {
                    target,
                    found: hit.is_some(),
                    addrs: hit.map(|p| p.addrs).unwrap_or_default(),
                    requests: stats.num_requests(),
                    successes: stats.num_successes(),
                    duration: stats.duration().unwrap_or_default(),
                });
            }
            kad::Event::RoutingUpdated { .. } => self.refresh_gauges(),
            kad::Event::ModeChanged { new_mode } => {
                tracing::info!("DHT mode is now {new_mode}");
            }
            _ => {}
        }
    }
}
