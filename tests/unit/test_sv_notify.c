/* The supervisor tells systemd READY/STOPPING itself: the datagram must
 * reach $NOTIFY_SOCKET, as a path or as an abstract "@name". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sv_notify.h"

/* Bind a datagram socket at name (path, or "@abstract") and return it. */
static int listener(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        unlink(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_not_equal(fd, -1);
    assert_int_equal(
        bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
        0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_sv_notify_reaches_a_path_socket(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/tandem-notify-%d.sock", (int)getpid());
    int fd = listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sv_notify("READY=1"), 0);
    expect_datagram(fd, "READY=1");
    close(fd);
    unlink(path);
}

static void test_sv_notify_reaches_an_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@tandem-notify-%d", (int)getpid());
    int fd = listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(sv_notify("STOPPING=1"), 0);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
}

static void test_sv_notify_without_systemd_does_nothing(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sv_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "/nonexistent/tandem-notify.sock", 1);
    assert_int_equal(sv_notify("READY=1"), -1); /* reported, not fatal */
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_notify_reaches_a_path_socket),
        cmocka_unit_test(test_sv_notify_reaches_an_abstract_socket),
        cmocka_unit_test(test_sv_notify_without_systemd_does_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
