/* The verbs of the diabridge command; each returns a process exit status
 * (DIA_EXIT_*; 2 for bad arguments). */
#ifndef DIA_CLI_VERBS_H
#define DIA_CLI_VERBS_H

#include <stdbool.h>

struct dia_journal;

int dia_verb_run(int argc, char **argv);
int dia_verb_demo(int argc, char **argv);
int dia_verb_decode(int argc, char **argv);
int dia_verb_export(int argc, char **argv);
int dia_verb_status(int argc, char **argv);
int dia_verb_dead_letters(int argc, char **argv);

/* Shared by the verbs: "diabridge VERB: message" to stderr, then the
 * synopsis of the usage text the verb registered with dia_cli_usage (its
 * lines up to the first blank one) and a pointer to --help; returns
 * DIA_EXIT_USAGE. */
void dia_cli_usage(const char *usage_text);
int dia_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* --version output, the same for every verb. */
void dia_print_version(void);
/* The journal path for read-only verbs: --journal, else the default. */
const char *dia_cli_journal_path(const char *given, char *buf, size_t len);
/* Open that journal for a verb; on failure says why on stderr
 * ("diabridge VERB: …") and returns NULL. */
struct dia_journal *dia_cli_open_journal(const char *verb, const char *given, bool readonly);

#endif
