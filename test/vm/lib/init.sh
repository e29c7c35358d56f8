#!/bin/sh
# /init of the Livegraft test guest: mount, load drivers, re-apply patches at
# boot (before any network, as a boot unit would), bring up the network, and
# hand the serial console to the host's test driver.
export PATH=/bin:/sbin:/usr/bin
export LIVEGRAFT_STATE_DIR=/var/lib/livegraft
export LIVEGRAFT_CONFIG=/var/lib/livegraft/agent.json
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
while read -r m; do
  [ -n "$m" ] && insmod "/lib/modules/$m"
done < /etc/modules.load
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext2 /dev/vda /var/lib/livegraft || echo "LIVEGRAFT_GUEST_DISK_FAILED" > /dev/kmsg
if [ -f "$LIVEGRAFT_CONFIG" ]; then
  livegraft-agent boot > /tmp/boot.log 2>&1
  echo $? > /tmp/boot.rc
fi
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi
export PS1=''
stty -echo
echo LIVEGRAFT_GUEST_READY
exec sh 2>&1
