/* Deliberately buggy, to prove the checkers are really there: the sanitizer build of the
 * harness and Valgrind must both catch these. `canary` reads past the end of a heap block;
 * `canary leak` loses a heap block (a definite leak); `canary ubsan` overflows a signed int
 * (undefined behaviour that only UBSan reports: no memory is touched wrongly). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static char *volatile keep;

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "ubsan") == 0) {
        volatile int large = INT_MAX;
        int sum = large + argc; /* argc is 2 here: signed overflow */
        return sum == 0 ? 3 : 0;
    }
    if (argc > 1 && strcmp(argv[1], "leak") == 0) {
        keep = malloc(64);
        if (keep != NULL) memset(keep, 1, 64);
        keep = NULL; /* the only pointer is gone */
        return 0;
    }
    char *buffer = malloc(8);
    if (buffer == NULL) return 2;
    memset(buffer, 'x', 8);
    volatile char past_the_end = buffer[8 + argc - 1];
    free(buffer);
    return past_the_end == 'x' ? 0 : 1;
}
