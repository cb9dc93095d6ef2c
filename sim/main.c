/*
 * diabridge-sim: the home of the device simulators.  Later issues add the
 * Dexcom receiver (pty), the Share server and Nightscout (loopback HTTP),
 * the Carelink stick and the Smart Pix; each is one row below.
 */
#include <stdio.h>
#include <string.h>

#include "sim/sim.h"

/* One row per simulator. */
extern const struct dia_simulator dia_sim_nightscout;
extern const struct dia_simulator dia_sim_dexcom_receiver;
extern const struct dia_simulator dia_sim_share_server;
extern const struct dia_simulator dia_sim_influx_server;

static const struct dia_simulator *const simulators[] = {
    &dia_sim_nightscout, &dia_sim_dexcom_receiver, &dia_sim_share_server, &dia_sim_influx_server,
    NULL};

static void usage(FILE *out)
{
    fprintf(out, "usage: diabridge-sim SIMULATOR [OPTIONS]\n"
                 "       diabridge-sim SIMULATOR --help\n"
                 "\n"
                 "Plays the device or server side of a protocol so diabridge can be tested\n"
                 "without hardware.  A serial simulator prints the path of its pty on the first\n"
                 "line of stdout; a server simulator prints its URL.\n"
                 "\n"
                 "Simulators:\n");
    size_t n = 0;
    for (; simulators[n]; n++)
        fprintf(out, "  %-18s %s\n", simulators[n]->name, simulators[n]->description);
    if (n == 0)
        fprintf(out, "  (none in this build yet)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("diabridge-sim %s\n", DIA_VERSION);
        return 0;
    }
    for (size_t i = 0; simulators[i]; i++) {
        if (strcmp(argv[1], simulators[i]->name) != 0)
            continue;
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            printf("usage: diabridge-sim %s %s\n", simulators[i]->name, simulators[i]->usage);
            return 0;
        }
        return simulators[i]->main(argc - 1, argv + 1);
    }
    fprintf(stderr, "diabridge-sim: unknown simulator \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
