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

}  // extern "C"
