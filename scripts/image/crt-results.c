/*
 * crt-results: syscalls with known results, for the end-to-end test that
 * compares a crt trace with strace (integration/tests/results.rs).
 *
 *   crt-results [ROOT]
 *
 * In the test image it runs with no argument. On the host, under strace,
 * it is given the image's root directory and chroots there first, so both
 * runs see the same files. Every call below is a raw syscall, so the C
 * library cannot swap one for another (glibc's nanosleep() is
 * clock_nanosleep, its stat() is newfstatat).
 *
 * In order, with the results the test expects:
 *   openat(AT_FDCWD, "/etc/crt-results-missing", O_RDONLY) = -1 ENOENT
 *   openat(AT_FDCWD, "/etc/crt-test-release", O_RDONLY)    = 3
 *   read(3, "crt test image\n", 64)                         = 15
 *   close(3)                                                = 0
 *   socket(AF_INET, SOCK_STREAM, IPPROTO_IP)                = 3
 *   connect(3, {... htons(9) ... "127.0.0.1"}, 16)          = -1 ECONNREFUSED
 *   close(3)                                                = 0
 *   nanosleep({tv_sec=0, tv_nsec=50000000}, NULL)           = 0
 *   pipe2([3, 4], O_CLOEXEC)                                = 0
 *   close(3), close(4)                                      = 0
 *   stat("/etc/crt-test-release", {S_IFREG|0644, size 15})  = 0
 *   getcwd("/", 4096)                                       = 2
 *   readlink("/etc/crt-test-link", "crt-test-release", 64)  = 16
 *   fork()                                                  = CHILD
 *   wait4(CHILD, [WEXITSTATUS(s) == 7], 0, NULL)            = CHILD
 *
 * It prints nothing and exits 0 when every result was the expected one;
 * otherwise it names the first unexpected result on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what, long got) {
    fprintf(stderr, "crt-results: %s: got %ld (errno %d)\n", what, got, errno);
    return 1;
}

int main(int argc, char **argv) {
    if (argc > 2) {
        fprintf(stderr, "usage: crt-results [ROOT]\n");
        return 2;
    }
    if (argc == 2 && (chroot(argv[1]) != 0 || chdir("/") != 0)) {
        perror("crt-results: chroot");
        return 2;
    }
    /* Known fd numbers: nothing above stderr is open. */
    syscall(SYS_close_range, 3, ~0U, 0);

    long r = syscall(SYS_openat, AT_FDCWD, "/etc/crt-results-missing", O_RDONLY);
    if (r != -1 || errno != ENOENT) return fail("openat missing", r);

    long fd = syscall(SYS_openat, AT_FDCWD, "/etc/crt-test-release", O_RDONLY);
    if (fd != 3) return fail("openat", fd);
    char buf[64];
    r = syscall(SYS_read, fd, buf, sizeof buf);
    if (r != 15) return fail("read", r);
    syscall(SYS_close, fd);

    long s = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (s != 3) return fail("socket", s);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r = syscall(SYS_connect, s, &sin, sizeof sin);
    if (r != -1 || errno != ECONNREFUSED) return fail("connect", r);
    syscall(SYS_close, s);

    struct timespec ts = {0, 50 * 1000 * 1000};
    r = syscall(SYS_nanosleep, &ts, NULL);
    if (r != 0) return fail("nanosleep", r);

    int fds[2];
    r = syscall(SYS_pipe2, fds, O_CLOEXEC);
    if (r != 0 || fds[0] != 3 || fds[1] != 4) return fail("pipe2", r);
    syscall(SYS_close, fds[0]);
    syscall(SYS_close, fds[1]);

    struct stat st;
    r = syscall(SYS_stat, "/etc/crt-test-release", &st);
    if (r != 0 || st.st_size != 15) return fail("stat", r);

    char cwd[4096];
    r = syscall(SYS_getcwd, cwd, sizeof cwd);
    if (r != 2) return fail("getcwd", r);

    char link[64];
    r = syscall(SYS_readlink, "/etc/crt-test-link", link, sizeof link);
    if (r != 16) return fail("readlink", r);

    /* A raw fork: the child makes no call of the C library before it exits. */
    long child = syscall(SYS_fork);
    if (child == 0) syscall(SYS_exit_group, 7);
    if (child < 0) return fail("fork", child);
    int status = 0;
    r = syscall(SYS_wait4, child, &status, 0, NULL);
    if (r != child || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
        return fail("wait4", r);
    return 0;
}
