//! Which peer to ask for a block, and when to ask another one too (sans-IO, on the caller's
//! clock).
//!
//! It owns what the puller has learnt about each peer's speed: the bytes it has been asked for
//! and not yet sent, and an estimate of the seconds it takes per byte, measured on each answer
//! over the bytes that were queued on that peer when the request was made (so a link that is
//! busy with many requests is not taken for a slow one, nor an idle one for a fast one). A
//! block goes to the holder that would finish it first; a peer with no estimate yet is assumed
//! as fast as the fastest known, so it is tried. While another holder could take a block, a
//! peer is given at most a second of work by its estimate (a megabyte until it has answered):
//! the rest waits for room ([`Sources::choose`]), so a slow peer never sits on blocks a fast
//! one would have sent long before, which the download's end would wait on or ask again. A
//! request that has taken much longer than its peer's estimate now is duplicated on another
//! holder ([`Sources::hedge_after`]), and so is one a peer left idle at the end of a download
//! would answer in under half the time still expected ([`Sources::endgame`]): the first
//! verified answer wins, and the other copy, still sent (BEP takes no request back), stays
//! queued on its peer until it lands. A lost connection empties its peer's queue and keeps
//! its rate for the next connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Weight of a new measurement in a peer's estimate.
const ALPHA: f64 = 0.3;
/// A request is duplicated after this many times its expected duration...
const HEDGE_FACTOR: f64 = 3.0;
/// ...but never sooner than this (scheduling noise, a peer reading from a cold disk), ...
const HEDGE_MIN: Duration = Duration::from_millis(250);
/// ...and after this when nothing is known of the peer yet.
const HEDGE_UNKNOWN: Duration = Duration::from_secs(2);
/// Work a peer is given at most, in seconds of its measured rate, while another holder could
/// take the block: enough to keep its link busy between answers, and no more, so that a slow
/// peer does not sit on blocks a fast one would have sent long before (the download's end
/// waits on them, or they are asked again and sent twice).
const HORIZON: Duration = Duration::from_secs(1);
/// Bytes a peer that has not answered yet is given at most, in that case: until its first
/// answer says how fast it is, it might be the slow one.
const COLD_BYTES: u64 = 1 << 20;
/// At the end of a download, a peer with no more than this much work queued takes copies of
/// requests another peer is still expected to take much longer over.
const ENDGAME_QUEUE: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Peer {
    /// Bytes asked of it and not answered yet.
    queued: u64,
    /// Seconds per byte, once measured.
    secs_per_byte: Option<f64>,
    /// Connections lost so far: a request made before the last one is not counted in
    /// `queued` any more, nor measured.
    lost: u32,
}

/// What is known of each peer's speed.
#[derive(Debug)]
pub(crate) struct Sources<K> {
    peers: HashMap<K, Peer>,
}

impl<K> Default for Sources<K> {
    fn default() -> Self {
        Self { peers: HashMap::new() }
    }
}

/// One request under way: made with [`Sources::start`], ended with [`Sources::answered`] or
/// [`Sources::abandoned`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ticket<K> {
    pub(crate) peer: K,
    size: u64,
    /// Bytes queued on the peer with this request, when it was made.
    ahead: u64,
    at: Instant,
    /// The peer's `lost` when it was made.
    lost: u32,
}

/// What [`Sources::choose`] says to do with a block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Choice<K> {
    /// Ask this peer.
    Ask(K),
    /// Every candidate has as much work queued as it should: wait for an answer to make room.
    Wait,
    /// There is no candidate.
    Nobody,
}

impl<K: Copy + Eq + Hash> Sources<K> {
    /// Whom to ask for a block of `size` bytes that `candidates` hold: the one [`Sources::pick`]
    /// prefers among those with room for it, or nobody yet if none has (a sole holder always
    /// has: waiting would not bring another).
    pub(crate) fn choose(&self, candidates: &[K], size: u32) -> Choice<K> {
        match candidates {
            [] => Choice::Nobody,
            [only] => Choice::Ask(*only),
            _ => {
                let roomy: Vec<K> = candidates.iter().copied().filter(|k| self.has_room(k, size)).collect();
                self.pick(&roomy, size).map_or(Choice::Wait, Choice::Ask)
            }
        }
    }

    /// True when `peer` may be asked for `size` more bytes while another holder could be: its
    /// queue stays under [`HORIZON`] of its measured rate (under [`COLD_BYTES`] while it has
    /// not answered yet), and one request always fits an idle peer.
    fn has_room(&self, peer: &K, size: u32) -> bool {
        let Some(p) = self.peers.get(peer) else { return true };
        let after = p.queued + u64::from(size);
        p.queued == 0
            || match p.secs_per_byte {
                Some(s) => after as f64 * s <= HORIZON.as_secs_f64(),
                None => after <= COLD_BYTES,
            }
    }

    /// The peer among `candidates` that would answer a request of `size` bytes first; `None`
    /// if there are none.
    pub(crate) fn pick(&self, candidates: &[K], size: u32) -> Option<K> {
        let fastest = self.peers.values().filter_map(|p| p.secs_per_byte).reduce(f64::min);
        let finish = |k: &K| {
            let peer = self.peers.get(k);
            let queued = peer.map_or(0, |p| p.queued) + u64::from(size);
            // Unknown peers, with nothing known at all: the least loaded first.
            let rate = peer.and_then(|p| p.secs_per_byte).or(fastest).unwrap_or(1.0);
            queued as f64 * rate
        };
        // Ties go to the earlier candidate: callers rotate the list to spread equal peers.
        candidates.iter().copied().reduce(|best, k| if finish(&k) < finish(&best) { k } else { best })
    }

    /// Records that `size` bytes were asked of `peer` at `now`.
    pub(crate) fn start(&mut self, peer: K, size: u32, now: Instant) -> Ticket<K> {
        let p = self.peers.entry(peer).or_default();
        p.queued += u64::from(size);
        Ticket { peer, size: u64::from(size), ahead: p.queued, at: now, lost: p.lost }
    }

    /// Peers asked for a block so far: with one, there is nobody to share the work with.
    pub(crate) fn known(&self) -> usize {
        self.peers.len()
    }

    /// True when `peer` has nothing queued: if no block waits for room on it, the download is
    /// at its end, where [`Sources::endgame`] puts it to use.
    pub(crate) fn idle(&self, peer: &K) -> bool {
        self.peers.get(peer).is_none_or(|p| p.queued == 0)
    }

    /// A peer among `others` to ask for `ticket`'s block too, at `now`: one with little work
    /// queued (the end of a download, when nothing more waits for it) that would answer in
    /// less than half the time the ticket's peer is still expected to take, or at all if the
    /// ticket is overdue (its peer is slower than it was). The last blocks of a download are
    /// then not left to the slowest peer's queue (BitTorrent's "endgame"). `None` while the
    /// ticket's peer has no estimate (the hedge covers it).
    pub(crate) fn endgame(&self, ticket: &Ticket<K>, others: &[K], now: Instant) -> Option<K> {
        let due = ticket.at + self.expected(ticket)?;
        let remaining = match due.saturating_duration_since(now) {
            Duration::ZERO => f64::INFINITY,
            left => left.as_secs_f64(),
        };
        let finish = |k: &K| {
            let p = self.peers.get(k)?;
            let s = p.secs_per_byte?;
            let queued = p.queued as f64 * s;
            let finish = (p.queued + ticket.size) as f64 * s;
            (queued <= ENDGAME_QUEUE.as_secs_f64() && finish * 2.0 < remaining).then_some(finish)
        };
        others
            .iter()
            .filter(|k| **k != ticket.peer)
            .filter_map(|k| Some((*k, finish(k)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| k)
    }

    /// How long `ticket`'s request is expected to take by its peer's estimate now, if it has
    /// one: the bytes that were queued with it at the peer's rate.
    fn expected(&self, ticket: &Ticket<K>) -> Option<Duration> {
        let s = self.peers.get(&ticket.peer)?.secs_per_byte?;
        Some(Duration::from_secs_f64(s * ticket.ahead as f64))
    }

    /// How long after it was made `ticket`'s request is worth asking another peer too, by the
    /// peer's estimate now. The estimate moves, most at first (a link's first answers come at
    /// its idle burst's rate), so callers look again when that time comes.
    pub(crate) fn hedge_after(&self, ticket: &Ticket<K>) -> Duration {
        self.expected(ticket).map_or(HEDGE_UNKNOWN, |e| e.mul_f64(HEDGE_FACTOR).max(HEDGE_MIN))
    }

    /// When `ticket`'s request is worth asking another peer too ([`Sources::hedge_after`]).
    pub(crate) fn hedge_at(&self, ticket: &Ticket<K>) -> Instant {
        ticket.at + self.hedge_after(ticket)
    }

    /// The request of `ticket` was answered at `now`.
    pub(crate) fn answered(&mut self, ticket: &Ticket<K>, now: Instant) {
        self.end(ticket, now, false);
    }

    /// The request of `ticket` is no longer waited for at `now` (another peer answered first,
    /// or it failed): the time it has taken is a lower bound of the peer's, so the estimate
    /// only gets slower from it.
    pub(crate) fn abandoned(&mut self, ticket: &Ticket<K>, now: Instant) {
        self.end(ticket, now, true);
    }

    /// A peer's connection gone: what was queued on it will not come. Its rate is kept for
    /// the next connection (most often one replacing it at once: both sides had dialled):
    /// learning it again would take the first answers, which a link's idle burst makes look
    /// fast, at their word, and flood the peer with a second of that rate's work.
    /// `ticket` is one of the requests that failed with the connection: each of them reports
    /// it, and only the first empties the queue (the next connection's requests stay in it).
    pub(crate) fn forget(&mut self, ticket: &Ticket<K>) {
        if let Some(p) = self.peers.get_mut(&ticket.peer).filter(|p| p.lost == ticket.lost) {
            p.queued = 0;
            p.lost = p.lost.wrapping_add(1);
        }
    }

    fn end(&mut self, ticket: &Ticket<K>, now: Instant, lower_bound: bool) {
        let Some(p) = self.peers.get_mut(&ticket.peer).filter(|p| p.lost == ticket.lost) else { return };
        p.queued = p.queued.saturating_sub(ticket.size);
        let sample = now.saturating_duration_since(ticket.at).as_secs_f64() / ticket.ahead.max(1) as f64;
        p.secs_per_byte = Some(match p.secs_per_byte {
            None => sample,
            Some(old) if lower_bound => old.max(sample),
            Some(old) => old + ALPHA * (sample - old),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u32 = 128 << 10;
    const MS: Duration = Duration::from_millis(1);

    /// Whole milliseconds, for estimates made of floating-point rates.
    fn ms(d: Duration) -> u128 {
        (d.as_secs_f64() * 1000.0).round() as u128
    }

    /// A peer's link as a queue served in order at `bytes_per_sec` (from `slows.0` on, at
    /// `slows.1`, if set).
    struct Link {
        bytes_per_sec: f64,
        busy_until: Instant,
        slows: Option<(Instant, f64)>,
    }

    impl Link {
        fn new(bytes_per_sec: f64, t0: Instant) -> Self {
            Self { bytes_per_sec, busy_until: t0, slows: None }
        }

        fn serve(&mut self, size: u32, now: Instant) -> Instant {
            let start = self.busy_until.max(now);
            let rate = match self.slows {
                Some((at, rate)) if start >= at => rate,
                _ => self.bytes_per_sec,
            };
            self.busy_until = start + Duration::from_secs_f64(f64::from(size) / rate);
            self.busy_until
        }
    }

    /// Downloads `blocks` blocks with `window` requests at once from links of the given rates,
    /// each block sent to `Sources::pick`'s choice; returns the blocks each link served and
    /// when the last one landed.
    fn download(rates: &[f64], blocks: usize, window: usize) -> (Vec<usize>, Duration) {
        let t0 = Instant::now();
        let mut links: Vec<Link> = rates.iter().map(|&r| Link::new(r, t0)).collect();
        let peers: Vec<usize> = (0..rates.len()).collect();
        let mut s = Sources::default();
        let mut served = vec![0; rates.len()];
        let mut inflight: Vec<(Instant, Ticket<usize>)> = Vec::new();
        let mut now = t0;
        for n in 0..blocks {
            if inflight.len() == window {
                // The next answer to land.
                inflight.sort_by_key(|(at, _)| *at);
                let (at, ticket) = inflight.remove(0);
                now = at;
                s.answered(&ticket, now);
            }
            // Callers rotate the candidates by block, as the puller does.
            let mut candidates = peers.clone();
            candidates.rotate_left(n % peers.len());
            let peer = s.pick(&candidates, BLOCK).unwrap();
            let ticket = s.start(peer, BLOCK, now);
            served[peer] += 1;
            inflight.push((links[peer].serve(BLOCK, now), ticket));
        }
        let end = inflight.iter().map(|(at, _)| *at).max().unwrap_or(now);
        (served, end - t0)
    }

    #[test]
    fn blocks_go_to_peers_in_proportion_to_their_speed() {
        // 5 MB/s and 20 MB/s: 160 MiB should take about 160 MiB / 25 MB/s, not the 2 × 80 MiB /
        // 5 MB/s of alternating between them.
        let (served, took) = download(&[5e6, 20e6], 1280, 64);
        let slow_share = served[0] as f64 / 1280.0;
        assert!((0.12..=0.28).contains(&slow_share), "the slow peer served {served:?}");
        let ideal = 1280.0 * f64::from(BLOCK) / 25e6;
        let fast_alone = 1280.0 * f64::from(BLOCK) / 20e6;
        assert!(took.as_secs_f64() < ideal * 1.1, "took {took:?}, ideal {ideal:.2} s");
        assert!(took.as_secs_f64() < fast_alone * 0.85, "took {took:?}, fast alone {fast_alone:.2} s");
    }

    #[test]
    fn equal_peers_share_equally() {
        let (served, _) = download(&[20e6, 20e6], 1000, 64);
        assert!(served[0].abs_diff(served[1]) <= 100, "{served:?}");
    }

    #[test]
    fn an_unknown_peer_is_tried_and_nobody_is_picked_from_nothing() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        let ticket = s.start('a', BLOCK, t0);
        s.answered(&ticket, t0 + 10 * MS);
        // 'b' has no estimate: it is taken to be as fast as 'a', and 'a' has nothing queued
        // either, so the tie goes to the first candidate.
        assert_eq!(s.pick(&['b', 'a'], BLOCK), Some('b'));
        s.start('a', BLOCK, t0 + 10 * MS);
        assert_eq!(s.pick(&['a', 'b'], BLOCK), Some('b'), "'a' is busy");
        assert_eq!(s.pick(&[], BLOCK), None);
    }

    #[test]
    fn the_hedge_follows_the_peers_observed_rate() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        let first = s.start('a', BLOCK, t0);
        assert_eq!(s.hedge_after(&first), HEDGE_UNKNOWN, "nothing known yet");
        // 128 KiB in 100 ms: about 1.3 MB/s.
        s.answered(&first, t0 + 100 * MS);
        let second = s.start('a', BLOCK, t0 + 100 * MS);
        assert_eq!(ms(s.hedge_after(&second)), 300, "three times the 100 ms expected");
        // Four blocks queued: four times as long expected.
        let queued: Vec<_> = (0..3).map(|_| s.start('a', BLOCK, t0 + 100 * MS)).collect();
        assert_eq!(ms(s.hedge_after(&queued[2])), 1200);
        // A fast peer is still given the floor.
        let c = s.start('c', BLOCK, t0);
        s.answered(&c, t0 + MS);
        let t = s.start('c', BLOCK, t0 + MS);
        assert_eq!(s.hedge_after(&t), HEDGE_MIN);
    }

    #[test]
    fn an_abandoned_request_only_slows_the_estimate() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        let t = s.start('a', BLOCK, t0);
        s.answered(&t, t0 + 100 * MS);
        // Abandoned sooner than it was expected to come: no faster for it.
        let t = s.start('a', BLOCK, t0);
        s.abandoned(&t, t0 + 10 * MS);
        let t = s.start('a', BLOCK, t0);
        assert_eq!(ms(s.hedge_after(&t)), 300);
        s.abandoned(&t, t0 + MS);
        // Stuck for a second: now it is taken to be that slow, and the other peer is asked.
        let t = s.start('a', BLOCK, t0);
        s.abandoned(&t, t0 + 1000 * MS);
        let t = s.start('a', BLOCK, t0);
        assert_eq!(ms(s.hedge_after(&t)), 3000);
        let b = s.start('b', BLOCK, t0);
        s.answered(&b, t0 + 100 * MS);
        assert_eq!(s.pick(&['a', 'b'], BLOCK), Some('b'));
    }

    #[test]
    fn a_lost_connection_empties_the_queue_and_keeps_the_rate() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        let t = s.start('a', BLOCK, t0);
        s.answered(&t, t0 + 100 * MS);
        let old: Vec<_> = (0..5).map(|_| s.start('a', BLOCK, t0 + 100 * MS)).collect();
        s.forget(&old[0]);
        assert!(s.idle(&'a'));
        // The next connection starts from the rate measured: 100 ms a block.
        let t = s.start('a', BLOCK, t0 + 200 * MS);
        assert_eq!(ms(s.hedge_after(&t)), 300);
        // What ends of the old connection's requests neither empties the new queue nor
        // measures anything (they were asked long before, over another connection).
        for o in &old {
            s.abandoned(o, t0 + 5000 * MS);
            s.forget(o);
        }
        assert!(!s.idle(&'a'));
        let t = s.start('a', BLOCK, t0 + 200 * MS);
        assert_eq!(ms(s.hedge_after(&t)), 600);
    }

    /// A download by [`Sources::choose`] as the puller makes it: at most `window` blocks
    /// requested and not yet received, each block's request asked of a second peer once
    /// [`Sources::hedge_after`] has passed (the slower copy still takes its link's time, as BEP
    /// cannot take a request back, and ends its request when it lands), and a block that must
    /// wait for room waiting for the next answer. Returns the blocks each link sent (duplicates included), how many blocks were
    /// sent twice, and when the last block landed.
    fn download_hedged(rates: &[f64], blocks: usize, window: usize) -> (Vec<usize>, usize, Duration) {
        download_sim(rates, None, blocks, window, true)
    }

    /// As [`download_hedged`], with the second link slowing to `slows.1` bytes a second from
    /// `slows.0` on, and [`Sources::endgame`] asked (when `endgame`) for every block asked of
    /// one peer only each time a peer is left idle.
    fn download_sim(
        rates: &[f64],
        slows: Option<(Duration, f64)>,
        blocks: usize,
        window: usize,
        endgame: bool,
    ) -> (Vec<usize>, usize, Duration) {
        struct Req {
            block: usize,
            lands: Instant,
            ticket: Ticket<usize>,
        }
        let t0 = Instant::now();
        let mut links: Vec<Link> = rates.iter().map(|&r| Link::new(r, t0)).collect();
        links[1].slows = slows.map(|(after, rate)| (t0 + after, rate));
        let peers: Vec<usize> = (0..rates.len()).collect();
        let mut s = Sources::default();
        let (mut sent, mut twice) = (vec![0; rates.len()], 0);
        let mut reqs: Vec<Req> = Vec::new();
        // Blocks asked for and not received: (block, first peer asked, when to hedge, its
        // ticket while it is asked of that peer only).
        type Open = (usize, usize, Option<Instant>, Option<Ticket<usize>>);
        let mut open: Vec<Open> = Vec::new();
        let (mut next, mut now, mut last) = (0, t0, t0);
        loop {
            while open.len() < window && next < blocks {
                let mut candidates = peers.clone();
                candidates.rotate_left(next % peers.len());
                let Choice::Ask(peer) = s.choose(&candidates, BLOCK) else { break };
                let ticket = s.start(peer, BLOCK, now);
                open.push((next, peer, Some(now + s.hedge_after(&ticket)), Some(ticket.clone())));
                sent[peer] += 1;
                reqs.push(Req { block: next, lands: links[peer].serve(BLOCK, now), ticket });
                next += 1;
            }
            let Some(land) = reqs.iter().map(|r| r.lands).min() else { break };
            let hedge = open.iter().filter_map(|(_, _, h, _)| *h).min();
            if let Some(at) = hedge.filter(|at| *at < land) {
                now = at;
                let k = open.iter().position(|(_, _, h, _)| *h == Some(at)).unwrap();
                let (block, first) = (open[k].0, open[k].1);
                // As the puller: looked at again by the estimate now.
                if let Some(later) = open[k].3.as_ref().map(|t| s.hedge_at(t)).filter(|t| *t > now) {
                    open[k].2 = Some(later);
                    continue;
                }
                (open[k].2, open[k].3) = (None, None);
                let others: Vec<usize> = peers.iter().copied().filter(|p| *p != first).collect();
                if let Some(peer) = s.pick(&others, BLOCK) {
                    let ticket = s.start(peer, BLOCK, now);
                    sent[peer] += 1;
                    twice += 1;
                    reqs.push(Req { block, lands: links[peer].serve(BLOCK, now), ticket });
                }
                continue;
            }
            now = land;
            let r = reqs.swap_remove(reqs.iter().position(|r| r.lands == land).unwrap());
            s.answered(&r.ticket, now);
            // A copy of a block already in lands (as the puller waits for it, in the
            // background): it only ends its request.
            let Some(k) = open.iter().position(|(b, _, _, _)| *b == r.block) else { continue };
            open.swap_remove(k);
            last = now;
            if !endgame || !s.idle(&r.ticket.peer) {
                continue;
            }
            // The blocks still waiting for room go first (as in the puller, where they are
            // woken before the requests under way look at the idle peer).
            if next < blocks && open.len() < window {
                continue;
            }
            for entry in open.iter_mut() {
                let Some(ticket) = entry.3.clone() else { continue };
                let others: Vec<usize> = peers.iter().copied().filter(|p| *p != ticket.peer).collect();
                if let Some(peer) = s.endgame(&ticket, &others, now) {
                    (entry.2, entry.3) = (None, None);
                    let dup = s.start(peer, BLOCK, now);
                    sent[peer] += 1;
                    twice += 1;
                    reqs.push(Req { block: entry.0, lands: links[peer].serve(BLOCK, now), ticket: dup });
                }
            }
        }
        (sent, twice, last - t0)
    }

    /// 64 MiB of 128 KiB blocks: the puller's window over all files.
    const WINDOW: usize = 512;

    /// From nothing known, the puller's whole window at once: at most 1 % of the blocks sent
    /// twice, and within 5 % of the time both links full from start to end would take.
    fn cold_start_is_near_ideal(rates: &[f64]) {
        for blocks in [1280, 4000] {
            let (sent, twice, took) = download_hedged(rates, blocks, WINDOW);
            let ideal = blocks as f64 * f64::from(BLOCK) / rates.iter().sum::<f64>();
            assert!(twice <= blocks / 100, "{twice} of {blocks} blocks sent twice ({sent:?})");
            assert!(took.as_secs_f64() < ideal * 1.05, "took {took:?}, ideal {ideal:.2} s ({sent:?})");
        }
    }

    #[test]
    fn from_a_cold_start_a_slow_peer_is_neither_flooded_nor_hedged() {
        // 5 MB/s and 20 MB/s: the slow peer must not be handed half of the window (seconds of
        // work, then hedged and sent twice).
        cold_start_is_near_ideal(&[5e6, 20e6]);
    }

    #[test]
    fn from_a_cold_start_equal_peers_finish_together() {
        cold_start_is_near_ideal(&[20e6, 20e6]);
    }

    #[test]
    fn a_sole_holder_is_always_asked() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        for _ in 0..100 {
            assert_eq!(s.choose(&['a'], BLOCK), Choice::Ask('a'));
            s.start('a', BLOCK, t0);
        }
        assert_eq!(s.choose(&[], BLOCK), Choice::<char>::Nobody);
    }

    #[test]
    fn a_peer_not_heard_from_is_given_little_until_it_answers() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        let per_peer = (COLD_BYTES / u64::from(BLOCK)) as usize;
        let mut tickets = Vec::new();
        for n in 0..2 * per_peer {
            let Choice::Ask(p) = s.choose(&['a', 'b'], BLOCK) else { panic!("block {n} not asked") };
            tickets.push(s.start(p, BLOCK, t0));
        }
        assert_eq!(s.choose(&['a', 'b'], BLOCK), Choice::Wait, "both have {COLD_BYTES} bytes queued");
        // 'a' answers its first block in 10 ms: 12.5 MB/s, room for a second's worth.
        let first_a = tickets.iter().find(|t| t.peer == 'a').unwrap();
        s.answered(first_a, t0 + 10 * MS);
        assert_eq!(s.choose(&['a', 'b'], BLOCK), Choice::Ask('a'));
    }

    #[test]
    fn a_peer_is_given_a_horizon_of_work_while_another_could_take_it() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        // 'a' at 128 KiB per 100 ms (1.3 MB/s): ten blocks make a second.
        let t = s.start('a', BLOCK, t0);
        s.answered(&t, t0 + 100 * MS);
        let t = s.start('b', BLOCK, t0);
        s.answered(&t, t0 + 100 * MS);
        let mut asked = HashMap::new();
        while let Choice::Ask(p) = s.choose(&['a', 'b'], BLOCK) {
            s.start(p, BLOCK, t0 + 100 * MS);
            *asked.entry(p).or_insert(0) += 1;
            assert!(asked.values().sum::<i32>() <= 20, "{asked:?}");
        }
        assert_eq!(asked, HashMap::from([('a', 10), ('b', 10)]));
        // Alone, 'a' is asked all the same.
        assert_eq!(s.choose(&['a'], BLOCK), Choice::Ask('a'));
    }

    #[test]
    fn at_the_end_an_idle_peer_takes_copies_of_a_slow_ones_requests() {
        // Two peers at 20 MB/s, one down to 2 MB/s after 3 s: what it holds then (its second
        // of work) would take ten seconds, and the hedge (3× the expected time) asks again
        // only seconds later. The peer left idle at the end takes copies at once.
        let slows = Some((Duration::from_secs(3), 2e6));
        let (sent, twice, took) = download_sim(&[20e6, 20e6], slows, 1280, WINDOW, true);
        let (_, _, without) = download_sim(&[20e6, 20e6], slows, 1280, WINDOW, false);
        // By T: 20 MB/s × T from one, 60 MB + 2 MB/s × (T - 3 s) from the other.
        let ideal = (1280.0 * f64::from(BLOCK) / 1e6 - 60.0 + 6.0) / 22.0;
        assert!(took.as_secs_f64() < ideal * 1.05, "took {took:?}, ideal {ideal:.2} s ({sent:?})");
        assert!(
            took + Duration::from_millis(500) < without,
            "took {took:?}, without the endgame {without:?}"
        );
        // Copies of what the slowed peer held at most (a second of work at 20 MB/s).
        let held = (20e6 / f64::from(BLOCK)) as usize;
        assert!(twice <= held, "{twice} blocks sent twice");
    }

    #[test]
    fn the_endgame_asks_only_an_idle_peer_that_would_answer_much_sooner() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        // 'a' at 128 KiB per 10 ms, 'b' at 128 KiB per 100 ms.
        let t = s.start('a', BLOCK, t0);
        s.answered(&t, t0 + 10 * MS);
        let t = s.start('b', BLOCK, t0);
        s.answered(&t, t0 + 100 * MS);
        let unknown = s.start('c', BLOCK, t0);
        assert_eq!(s.endgame(&unknown, &['a'], t0), None, "'c' is not measured: the hedge covers it");
        // Five blocks on 'b': the last is expected in 500 ms.
        let on_b: Vec<_> = (0..5).map(|_| s.start('b', BLOCK, t0)).collect();
        assert!(s.idle(&'a') && !s.idle(&'b'));
        assert_eq!(s.endgame(&on_b[4], &['a', 'b'], t0), Some('a'));
        // 10 ms on 'a' against 100 ms still to go on 'b': half is 50 ms, worth it.
        assert_eq!(s.endgame(&on_b[0], &['a'], t0), Some('a'));
        // Not with 'b' about to answer: 10 ms on 'a' against 15 ms.
        assert_eq!(s.endgame(&on_b[0], &['a'], t0 + 85 * MS), None);
        // Overdue: worth a copy.
        assert_eq!(s.endgame(&on_b[0], &['a'], t0 + 150 * MS), Some('a'));
        // Nor once 'a' has more than 100 ms of work.
        for _ in 0..11 {
            s.start('a', BLOCK, t0);
        }
        assert_eq!(s.endgame(&on_b[4], &['a'], t0), None);
    }

    #[test]
    fn the_hedge_is_timed_by_the_estimate_when_it_comes() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        // Made while nothing is known: the long wait, until an answer makes the peer known.
        let unknown = s.start('a', BLOCK, t0);
        assert_eq!(s.hedge_after(&unknown), HEDGE_UNKNOWN);
        let early = s.start('b', BLOCK, t0);
        let b = s.start('b', BLOCK, t0);
        s.answered(&b, t0 + 20 * MS);
        assert_eq!(ms(s.hedge_after(&early)), 250, "10 ms a block now: the floor");
        // A first answer at a burst's rate: 1 ms a block. A request with 100 blocks ahead of
        // it would be asked again after 300 ms...
        s.answered(&unknown, t0 + MS);
        let queued: Vec<_> = (0..100).map(|_| s.start('a', BLOCK, t0 + MS)).collect();
        let last = queued.last().unwrap();
        assert_eq!(ms(s.hedge_after(last)), 300);
        // ...but the next answers show 10 ms a block: by then it is due after about 3 s.
        for (n, t) in queued.iter().take(10).enumerate() {
            s.answered(t, t0 + MS + 10 * MS * (n as u32 + 1));
        }
        assert!(ms(s.hedge_after(last)) > 2000, "{:?}", s.hedge_after(last));
        assert_eq!(s.hedge_at(last), t0 + MS + s.hedge_after(last));
    }
}
