// Anti-kt jets (E-scheme, distances in rapidity and azimuth), as FastJet and Pythia's SlowJet define them,
// for events with pileup: ten thousand particles, most of them soft and close together.
//
// Exact: the pair with the smallest d_ij = min(1/kt_i^2, 1/kt_j^2) dR_ij^2 / R^2 is always a particle and its
// geometric nearest neighbour (FastJet's lemma), so each pseudojet keeps its nearest neighbour within R, and
// a binary heap the smallest d of each. What makes it fast here is the bookkeeping of who needs a new
// neighbour when two pseudojets merge: tiles of R/2, each an array of its members' coordinates (scanned
// contiguously), searched ring by ring until no closer tile is left,
// a list per pseudojet of those whose neighbour it is, and per tile an upper bound of its members' neighbour
// distances, so that a new pseudojet is offered only to the tiles where it can be someone's nearest.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kPi = 3.141592653589793238462643383280;
constexpr double kMaxRap = 1e5;  // FastJet's rapidity of a particle along the beam

struct Clustering {
    static constexpr int kBins = 64;  // histogram of the neighbour distances: a bound on the largest
    int n, ny, nphi, rings, top = 0, counts[kBins] = {};
    double r2, wy, wphi, ymin;
    std::vector<double> px, py, pz, e, rap, phi, inv_kt2, nn_dist, tile_max, key;
    std::vector<int> nn, bin, tile, slot, rev_next, rev_prev, rev_head, heap, pos, orphans, column_of;
    struct Member {  // a pseudojet in its tile, with the coordinates its distances need (contiguous to scan)
        double rap, phi;
        int index;
    };
    std::vector<std::vector<Member>> members;

    static constexpr int kMaxRings = 6;

    // The squared distances from a point to the rows and columns of tiles around its own, ring by ring.
    struct Around {
        int iy, ip, rings = -1;
        double y, p, dy2[2 * kMaxRings + 1], dp2[2 * kMaxRings + 1];
        double& row2(int d) { return dy2[d + kMaxRings]; }  // to the row d tiles away (huge where there is none)
        double& col2(int d) { return dp2[d + kMaxRings]; }
        double row2(int d) const { return dy2[d + kMaxRings]; }
        double col2(int d) const { return dp2[d + kMaxRings]; }
    };

    Around around(double y, double p) const {
        Around a;
        a.y = y;
        a.p = p;
        a.iy = row(y);
        a.ip = column(p);
        a.row2(0) = 0.;
        a.col2(0) = 0.;
        a.rings = 0;
        return a;
    }

    // Extends `a` to ring `ring`; returns the smallest squared distance to a tile of that ring.
    double reach(Around& a, int ring) const {
        double nearest = 1e300;
        for (int d = -ring; d <= ring; d += 2 * ring) {
            const int iy = a.iy + d;
            double dy = 1e150;  // no such row
            if (iy >= 0 && iy < ny) {  // the edge rows reach to infinity
                const double lo = iy == 0 ? -1e300 : ymin + iy * wy, hi = iy == ny - 1 ? 1e300 : ymin + (iy + 1) * wy;
                dy = a.y < lo ? lo - a.y : (a.y > hi ? a.y - hi : 0.);
            }
            double dc = std::fabs(a.p - (column_of[a.ip + d + rings + 1] + 0.5) * wphi);
            if (dc > kPi) dc = kTwoPi - dc;
            const double dp = dc > 0.5 * wphi ? dc - 0.5 * wphi : 0.;
            a.row2(d) = dy * dy;
            a.col2(d) = dp * dp;
            nearest = std::min(nearest, std::min(a.row2(d), a.col2(d)));
        }
        a.rings = ring;
        return nearest;
    }

    // Calls f(tile, squared distance to it) for each tile of ring `ring` around `a` (extended to it).
    template <class F> void ring_tiles(const Around& a, int ring, F f) const {
        if (ring == 0) {
            f(a.iy * nphi + a.ip, 0.);
            return;
        }
        const int* col = &column_of[a.ip + rings + 1];  // col[dp]: the column dp away, wrapped
        for (int dy = -ring; dy <= ring; ++dy) {
            const int y = a.iy + dy;
            if (y < 0 || y >= ny) continue;
            const int base = y * nphi;
            if (dy == -ring || dy == ring) {
                for (int dp = -ring; dp <= ring; ++dp) f(base + col[dp], a.row2(dy) + a.col2(dp));
            } else {
                f(base + col[-ring], a.row2(dy) + a.col2(-ring));
                f(base + col[ring], a.row2(dy) + a.col2(ring));
            }
        }
    }

    Clustering(int n_, const double* px_, const double* py_, const double* pz_, const double* e_, double r)
        : n(n_), r2(r * r), px(px_, px_ + n_), py(py_, py_ + n_), pz(pz_, pz_ + n_), e(e_, e_ + n_),
          rap(n_), phi(n_), inv_kt2(n_), nn_dist(n_, r * r), key(n_), nn(n_, -1), bin(n_, -1), tile(n_),
          slot(n_), rev_next(n_), rev_prev(n_), rev_head(n_, -1), pos(n_, -1) {
        for (int i = 0; i < n; ++i) kinematics(i);
        double lo = 0., hi = 0.;
        if (n > 0) {
            auto [a, b] = std::minmax_element(rap.begin(), rap.end());
            lo = *a;
            hi = *b;
        }
        const double size = r / 2.;
        ny = std::max(1, static_cast<int>((hi - lo) / size));
        wy = std::max((hi - lo) / ny, 1e-9);
        ymin = lo;
        nphi = std::max(3, static_cast<int>(kTwoPi / size));
        wphi = kTwoPi / nphi;
        rings = std::min(kMaxRings, static_cast<int>(std::ceil(r / std::min(wy, wphi))) + 1);
        for (int k = 0; k < nphi + 2 * rings + 2; ++k) column_of.push_back(((k - rings - 1) % nphi + nphi) % nphi);
        members.resize(ny * nphi);
        tile_max.assign(ny * nphi, 0.);
        for (int i = 0; i < n; ++i) tile_insert(i);
        for (int i = 0; i < n; ++i) {
            find_nn(i);
            rev_insert(i);
        }
        for (int i = 0; i < n; ++i) heap_push(i);
    }

    void kinematics(int i) {  // FastJet's PseudoJet::_set_rap_phi
        const double kt2 = px[i] * px[i] + py[i] * py[i];
        double p = kt2 == 0. ? 0. : std::atan2(py[i], px[i]);
        if (p < 0.) p += kTwoPi;
        if (p >= kTwoPi) p -= kTwoPi;
        phi[i] = p;
        if (e[i] == std::fabs(pz[i]) && kt2 == 0.) {
            const double max_rap = kMaxRap + std::fabs(pz[i]);
            rap[i] = pz[i] >= 0. ? max_rap : -max_rap;
        } else {
            const double m2 = std::max(0., (e[i] + pz[i]) * (e[i] - pz[i]) - kt2);
            const double e_plus_pz = e[i] + std::fabs(pz[i]);
            rap[i] = 0.5 * std::log((kt2 + m2) / (e_plus_pz * e_plus_pz));
            if (pz[i] > 0.) rap[i] = -rap[i];
        }
        inv_kt2[i] = kt2 > 0. ? 1. / kt2 : 1e300;
    }

    static double dist(double y1, double p1, double y2, double p2) {
        double dphi = std::fabs(p1 - p2);
        if (dphi > kPi) dphi = kTwoPi - dphi;
        const double dy = y1 - y2;
        return dy * dy + dphi * dphi;
    }
    double dist(int i, int j) const { return dist(rap[i], phi[i], rap[j], phi[j]); }

    int row(double y) const { return std::clamp(static_cast<int>((y - ymin) / wy), 0, ny - 1); }
    int column(double p) const { return std::clamp(static_cast<int>(p / wphi), 0, nphi - 1); }

    void tile_insert(int i) {
        const int t = row(rap[i]) * nphi + column(phi[i]);
        tile[i] = t;
        slot[i] = static_cast<int>(members[t].size());
        members[t].push_back({rap[i], phi[i], i});
    }

    void tile_remove(int i) {
        std::vector<Member>& v = members[tile[i]];
        v[slot[i]] = v.back();
        slot[v[slot[i]].index] = slot[i];
        v.pop_back();
    }

    void rev_insert(int i) {  // i joins the list of those whose nearest neighbour is nn[i]
        const int j = nn[i];
        if (j < 0) return;
        rev_prev[i] = -1;
        rev_next[i] = rev_head[j];
        if (rev_head[j] >= 0) rev_prev[rev_head[j]] = i;
        rev_head[j] = i;
    }

    void rev_remove(int i) {
        const int j = nn[i];
        if (j < 0) return;
        if (rev_prev[i] >= 0) rev_next[rev_prev[i]] = rev_next[i];
        else rev_head[j] = rev_next[i];
        if (rev_next[i] >= 0) rev_prev[rev_next[i]] = rev_prev[i];
    }

    void uncount(int i) {
        if (bin[i] < 0) return;
        --counts[bin[i]];
        bin[i] = -1;
        while (top > 0 && counts[top] == 0) --top;
    }

    // i's nearest neighbour is j (-1: none within R) at squared distance d.
    void assign(int i, int j, double d) {
        uncount(i);
        nn[i] = j;
        nn_dist[i] = d;
        bin[i] = std::min(kBins - 1, static_cast<int>(d * (kBins / r2)));
        ++counts[bin[i]];
        top = std::max(top, bin[i]);
        tile_max[tile[i]] = std::max(tile_max[tile[i]], d);
        key[i] = j < 0 ? inv_kt2[i] : std::min(inv_kt2[i], inv_kt2[j]) * d / r2;
    }

    // The nearest neighbour of i within R, searched ring by ring while a nearer tile can be left; `hint`, if
    // not -1, is a candidate to start from (it prunes the search sooner).
    void find_nn(int i, int hint = -1) {
        double best = r2;
        int best_j = -1;
        if (hint >= 0 && dist(i, hint) < best) {
            best = dist(i, hint);
            best_j = hint;
        }
        Around a = around(rap[i], phi[i]);
        for (int ring = 0; ring <= rings; ++ring) {
            if (ring > 0 && reach(a, ring) >= best) break;
            ring_tiles(a, ring, [&](int t, double d2) {
                if (d2 >= best) return;
                for (const Member& m : members[t]) {
                    const double d = dist(a.y, a.p, m.rap, m.phi);
                    if (d < best && m.index != i) {
                        best = d;
                        best_j = m.index;
                    }
                }
            });
        }
        assign(i, best_j, best);
    }

    // ---- the heap of each pseudojet's smallest distance
    bool less(int a, int b) const { return key[heap[a]] < key[heap[b]]; }
    void swap_at(int a, int b) {
        std::swap(heap[a], heap[b]);
        pos[heap[a]] = a;
        pos[heap[b]] = b;
    }
    void up(int a) {
        while (a > 0 && less(a, (a - 1) / 2)) {
            swap_at(a, (a - 1) / 2);
            a = (a - 1) / 2;
        }
    }
    void down(int a) {
        const int size = static_cast<int>(heap.size());
        for (;;) {
            int c = 2 * a + 1;
            if (c >= size) return;
            if (c + 1 < size && less(c + 1, c)) ++c;
            if (!less(c, a)) return;
            swap_at(a, c);
            a = c;
        }
    }
    void heap_push(int i) {
        pos[i] = static_cast<int>(heap.size());
        heap.push_back(i);
        up(pos[i]);
    }
    void heap_update(int i) {
        up(pos[i]);
        down(pos[i]);
    }
    void heap_remove(int i) {
        const int a = pos[i], last = static_cast<int>(heap.size()) - 1;
        if (a != last) swap_at(a, last);
        heap.pop_back();
        pos[i] = -1;
        if (a != last) heap_update(heap[a]);
    }

    // Merges j into i (E-scheme) and restores every nearest neighbour.
    void merge(int i, int j) {
        orphans.clear();
        for (int k : {i, j}) {
            for (int m = rev_head[k]; m >= 0; m = rev_next[m])
                if (m != i && m != j) orphans.push_back(m);
            rev_head[k] = -1;
        }
        for (int m : orphans) nn[m] = -1;  // their lists were dropped whole
        if (nn[j] != i) rev_remove(j);
        tile_remove(i);
        tile_remove(j);
        heap_remove(j);
        uncount(j);
        px[i] += px[j];
        py[i] += py[j];
        pz[i] += pz[j];
        e[i] += e[j];
        kinematics(i);
        tile_insert(i);
        find_nn(i);
        rev_insert(i);
        heap_update(i);
        for (int m : orphans) {
            find_nn(m, i);  // the merged pseudojet is near where their neighbour was
            rev_insert(m);
            heap_update(m);
        }
        offer(i);
    }

    // Makes i the nearest neighbour of everyone it is nearer to than their own.
    void offer(int i) {
        const double far = (top + 1) * (r2 / kBins);  // nobody's neighbour is farther
        Around a = around(rap[i], phi[i]);
        for (int ring = 0; ring <= rings; ++ring) {
            if (ring > 0 && reach(a, ring) >= far) break;
            ring_tiles(a, ring, [&](int t, double d2) {
                if (d2 >= tile_max[t]) return;
                double most = 0.;
                for (const Member& member : members[t]) {
                    const int m = member.index;
                    const double d = dist(a.y, a.p, member.rap, member.phi);
                    if (d < nn_dist[m] && m != i) {
                        rev_remove(m);
                        assign(m, i, d);
                        rev_insert(m);
                        heap_update(m);
                    }
                    most = std::max(most, nn_dist[m]);
                }
                tile_max[t] = most;
            });
        }
    }

    void remove_jet(int i) {  // i has no neighbour within R, so nobody has i as theirs
        tile_remove(i);
        heap_remove(i);
        uncount(i);
    }
};

}  // namespace

extern "C" {

// Clusters n particles (px, py, pz, e) into anti-kt jets of radius r; writes the jets with
// pT >= pt_min, pT-ordered, at most `room` of them (pT, rapidity, azimuth in (-pi, pi]); returns
// how many there are.
int antikt(int n, const double* px, const double* py, const double* pz, const double* e, double r, double pt_min,
           int room, double* jet_pt, double* jet_rap, double* jet_phi) {
    if (!(r > 0. && r < 2.)) return -1;  // the tiles assume a few rings fit around the azimuth
    Clustering c(n, px, py, pz, e, r);
    std::vector<int> jets;
    while (!c.heap.empty()) {
        const int i = c.heap[0];
        if (c.nn[i] < 0) {
            c.remove_jet(i);
            if (c.px[i] * c.px[i] + c.py[i] * c.py[i] >= pt_min * pt_min) jets.push_back(i);
        } else {
            c.merge(i, c.nn[i]);
        }
    }
    std::vector<double> pt2(n);
    for (int i : jets) pt2[i] = c.px[i] * c.px[i] + c.py[i] * c.py[i];
    std::stable_sort(jets.begin(), jets.end(), [&](int a, int b) { return pt2[a] > pt2[b]; });
    const int count = static_cast<int>(jets.size());
    for (int k = 0; k < std::min(count, room); ++k) {
        const int i = jets[k];
        jet_pt[k] = std::sqrt(pt2[i]);
        jet_rap[k] = c.rap[i];
        jet_phi[k] = c.phi[i] > kPi ? c.phi[i] - kTwoPi : c.phi[i];
    }
    return count;
}

}  // extern "C"
