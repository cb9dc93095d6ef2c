/*
 * diabridge-sim: device simulators that speak the devices' real protocols,
 * so the daemon's real serial and HTTP code runs end to end without
 * hardware.  Each simulator is a row in sim/main.c's table.
 */
#ifndef DIA_SIM_SIM_H
#define DIA_SIM_SIM_H

struct dia_simulator {
    const char *name;                   /* "dexcom-receiver" */
    const char *description;            /* one line for --help */
    const char *usage;                  /* options, shown by `diabridge-sim NAME --help` */
    int (*main)(int argc, char **argv); /* argv[0] is the simulator name */
};

#endif
