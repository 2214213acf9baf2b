#!/usr/bin/env bash
# Builds the Debian manual-page task in data/manpages (not committed, see
# .gitignore): downloads the .deb files of the packages listed below with
# `apt-get download` (nothing is installed) into a cache, data/manpages/debs
# or $MANPAGES_DEBS, extracts each into a temporary directory of its own and
# runs manpages_task.py on them. Idempotent: a package already in the cache is
# not downloaded again, and the output is deterministic for a given seed.
# A package that cannot be downloaded is reported and skipped, unless it is
# `manpages`. Extra arguments go to manpages_task.py.
set -euo pipefail
cd "$(dirname "$0")/.."
debs="${MANPAGES_DEBS:-data/manpages/debs}"

# Debian 12 (bookworm) packages, chosen for their man pages: the Linux
# man-pages project, the common command-line tools, and a few libraries
# documented page by page (whose SEE ALSO sections link a lot).
packages=(
  # man-pages project: system calls, C library, files, conventions
  manpages manpages-dev
  # base system
  coreutils util-linux util-linux-extra bsdutils bsdextrautils findutils grep sed gawk
  mawk tar gzip bzip2 xz-utils zstd cpio unzip zip p7zip-full diffutils patch file less
  man-db groff-base groff mandoc debianutils hostname login passwd adduser base-passwd
  sensible-utils procps psmisc kmod udev bash dash zsh fish-common ncurses-bin
  readline-common info texinfo sudo cron at logrotate rsyslog
  # systemd and friends
  systemd systemd-container systemd-resolved systemd-timesyncd systemd-boot
  libsystemd-dev sysvinit-utils init-system-helpers dbus-bin dbus-daemon polkitd
  # disks and file systems
  e2fsprogs dosfstools xfsprogs btrfs-progs exfatprogs ntfs-3g mtools squashfs-tools
  parted fdisk mount lvm2 mdadm cryptsetup-bin cryptsetup dmsetup
  thin-provisioning-tools multipath-tools nfs-common nfs-kernel-server cifs-utils autofs
  fuse3 sshfs quota acl attr
  # hardware and performance
  pciutils usbutils lshw dmidecode hdparm smartmontools nvme-cli sg3-utils sysstat htop
  linux-cpupower lm-sensors i2c-tools initramfs-tools grub-common grub2-common
  efibootmgr linux-perf trace-cmd bpftrace bpfcc-tools
  # security
  apparmor apparmor-utils selinux-utils policycoreutils auditd libpam-modules
  libpam-runtime libcap2-bin openssl libssl-doc gnutls-bin libnss3-tools ca-certificates
  gnupg gpg gpg-agent dirmngr krb5-user ldap-utils slapd
  # networking
  iproute2 iputils-ping net-tools traceroute mtr-tiny ethtool iw wireless-tools
  wpasupplicant network-manager ifupdown isc-dhcp-client iptables nftables firewalld
  openssh-client openssh-server autossh curl wget rsync whois bind9-dnsutils bind9
  unbound netcat-openbsd socat nmap tcpdump openvpn wireguard-tools ppp chrony ntpsec
  samba samba-common-bin smbclient winbind
  # mail, web and databases
  postfix exim4-base dovecot-core mutt mailutils procmail fetchmail apache2 apache2-bin
  apache2-utils squid varnish sqlite3 postgresql-client-15 postgresql-15 mariadb-client
  mariadb-server redis-tools db5.3-util
  # development
  make cmake gcc-12 llvm-14 clang-tools-14 binutils-common binutils-x86-64-linux-gnu gdb
  valgrind strace ltrace autoconf automake libtool pkgconf m4 bison flex gettext git-man
  subversion mercurial-common quilt patchutils universal-ctags expect libxml2-utils
  xsltproc libbsd-dev libpcre2-dev libcurl4-doc libpcap0.8-dev liburing-dev
  libseccomp-dev libaio-dev libtirpc-dev libacl1-dev libattr1-dev libcap-dev
  libselinux1-dev libx11-doc tcl8.6-doc
  # languages
  perl perl-doc python3.11 python3 ruby3.1 php8.2-cli rustc cargo golang-go npm bc dc ed
  # Debian tooling
  dpkg dpkg-dev apt apt-utils debconf debhelper devscripts lintian autopkgtest
  git-buildpackage dgit debian-goodies debootstrap sbuild fakeroot
  # containers and virtual machines
  docker.io podman buildah skopeo runc lxc libvirt-clients
  # text and file utilities
  moreutils num-utils jq xxd tree ripgrep fd-find parallel pv nano vim-runtime rename
  rpm borgbackup restic screen tmux uuid-runtime
  # images, sound, documents, printing, X
  imagemagick-6.q16 netpbm libtiff-tools ghostscript poppler-utils texlive-binaries a2ps
  graphviz ffmpeg sox alsa-utils pipewire-bin cups cups-client sane-utils libsane-common
  bluez x11-apps x11-utils x11-xserver-utils xserver-xorg-core xfonts-utils xterm
  xdg-utils fontconfig
)

if [ "$(id -u)" = 0 ]; then
  sudo=""
  # apt would download as _apt, who cannot write to the cache directory.
  apt_opts=(-o APT::Sandbox::User=root)
else
  sudo="sudo"
  apt_opts=()
fi

cached() { compgen -G "$debs/${1}_*.deb" >/dev/null; }

mkdir -p "$debs"
missing=()
for p in "${packages[@]}"; do
  cached "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "downloading ${#missing[@]} of ${#packages[@]} packages into $debs" >&2
  # One apt-get for all is fast; it fails as a whole if any one name cannot
  # be had (or the package lists are missing), and then each is tried alone
  # after refreshing the lists.
  if ! (cd "$debs" && apt-get download -qq "${apt_opts[@]}" "${missing[@]}") 2>/dev/null; then
    $sudo apt-get update -qq
    for p in "${missing[@]}"; do
      cached "$p" && continue
      if ! (cd "$debs" && apt-get download -qq "${apt_opts[@]}" "$p"); then
        [ "$p" = manpages ] && { echo "cannot download manpages, giving up" >&2; exit 1; }
        echo "skipped $p: cannot download it" >&2
      fi
    done
  fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Each package goes to a directory of its own, named like the .deb without
# its architecture (coreutils_9.1-1): manpages_task.py reads the package and
# its version there. Only the man trees are taken out of the archive
# (dpkg-deb -x would write 1.5 GB of binaries for 76 MB of pages), a
# package per core at a time.
extract() {
  local dir
  dir="$tmp/$(basename "$1" .deb)"
  dir="${dir%_*}"
  mkdir -p "$dir"
  # tar fails when a package has no page at all; that is no error here.
  dpkg-deb --fsys-tarfile "$1" | tar -x -C "$dir" --wildcards '*/man/*' 2>/dev/null
  [ "${PIPESTATUS[0]}" = 0 ] || echo "skipped $1: dpkg-deb cannot read it" >&2
}
export -f extract
export tmp
for p in "${packages[@]}"; do
  compgen -G "$debs/${p}_*.deb" | sort -V | tail -n 1 || true  # not downloaded
done | xargs -d '\n' -P "$(nproc)" -n 1 bash -c 'extract "$1"' _
python3 scripts/manpages_task.py --man "$tmp" --out data/manpages "$@"
