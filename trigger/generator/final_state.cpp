// The visible final state of a Pythia8 event record, copied into numpy's columns.
//
// No Pythia header is needed: the caller passes the addresses of the accessors pythia8mc
// itself exports (Event::size, Event::at, Particle::isFinal, ...). Each is a non-virtual
// member function, i.e. a plain function taking `this` first, so calling it here reads
// exactly what the Python bindings read, in the same order.
#include <cstdint>

extern "C" {

typedef int (*SizeFn)(const void* event);
typedef const void* (*AtFn)(void* event, int index);
typedef bool (*FlagFn)(const void* particle);
typedef int (*IntFn)(const void* particle);
typedef double (*RealFn)(const void* particle);

struct Accessors {
    SizeFn size;
    AtFn at;
    FlagFn is_final;
    FlagFn is_visible;
    IntFn id;
    RealFn pt, eta, phi;
};

int event_size(const Accessors* pythia, const void* event) { return pythia->size(event); }

// Writes at most `capacity` particles; returns how many there are (call again with more room
// if that is more than `capacity`).
int final_visible(const Accessors* pythia, void* event, int64_t* pid, double* pt, double* eta,
                  double* phi, int capacity) {
    const int size = pythia->size(event);
    int n = 0;
    for (int i = 0; i < size; ++i) {
        const void* particle = pythia->at(event, i);
        if (!pythia->is_final(particle) || !pythia->is_visible(particle)) continue;
        if (n < capacity) {
            pid[n] = pythia->id(particle);
            pt[n] = pythia->pt(particle);
            eta[n] = pythia->eta(particle);
            phi[n] = pythia->phi(particle);
        }
        ++n;
    }
    return n;
}

// Event::append(id, status, col, acol, px, py, pz, e, m, scale, pol), pythia8mc's own.
typedef int (*AppendFn)(void* event, int id, int status, int col, int acol, double px, double py, double pz,
                        double e, double m, double scale, double pol);

// Appends `n` final-state particles (status 1, no colour, mothers or daughters: overlaid pileup)
// to the event record; returns the event's new size.
int append_final(AppendFn append, const Accessors* pythia, void* event, int n, const int64_t* pid,
                 const double* px, const double* py, const double* pz, const double* e, const double* m) {
    for (int i = 0; i < n; ++i) append(event, static_cast<int>(pid[i]), 1, 0, 0, px[i], py[i], pz[i], e[i], m[i], 0., 9.);
    return pythia->size(event);
}

}  // extern "C"
