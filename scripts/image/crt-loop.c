/*
 * crt-loop: a syscall loop for the test image, so benchmarks and tests can
 * drive one syscall many times from inside a container and read its cost.
 *
 *   crt-loop getppid N      N x getppid()
 *   crt-loop getuid N       N x getuid()          (a syscall nobody traces)
 *   crt-loop openat PATH N  N x openat(PATH) + close
 *
 * Prints one line: "<name> <ns> ns/call <calls>".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void report(const char *name, double start, long n) {
    printf("%s %.1f ns/call %ld\n", name, (now() - start) / (double)n * 1e9, n);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: crt-loop getppid|getuid N | crt-loop openat PATH N\n");
        return 2;
    }
    const char *what = argv[1];
    if (!strcmp(what, "getppid") || !strcmp(what, "getuid")) {
        long nr = !strcmp(what, "getppid") ? SYS_getppid : SYS_getuid;
        long n = atol(argv[2]);
        if (n <= 0) return 2;
        double t = now();
        for (long i = 0; i < n; i++) syscall(nr);
        report(what, t, n);
        return 0;
    }
    if (!strcmp(what, "openat") && argc == 4) {
        long n = atol(argv[3]);
        if (n <= 0) return 2;
        double t = now();
        for (long i = 0; i < n; i++) {
            int fd = openat(AT_FDCWD, argv[2], O_RDONLY | O_CLOEXEC);
            if (fd < 0) { perror("openat"); return 1; }
            close(fd);
        }
        report(what, t, n);
        return 0;
    }
    fprintf(stderr, "crt-loop: unknown mode %s\n", what);
    return 2;
}
