# Where a test PBX lives and which ports it uses; sourced by tools/testpbx and
# tools/sipfarend so both agree. Every port comes from CALLBACKD_TESTPBX_AMI_PORT unless
# set on its own, so test PBXs with different AMI ports (several checkouts, several
# PBXs of one cluster test) never share a port.
#
#   CALLBACKD_TESTPBX_DIR            the chroot and its state (default <repo>/.testpbx)
#   CALLBACKD_TESTPBX_AMI_PORT       AMI on 127.0.0.1 (default 5038)
#   CALLBACKD_TESTPBX_SIP_PORT       the PBX's PJSIP transport, UDP (default AMI + 1000)
#   CALLBACKD_TESTPBX_FAREND_PORT    the SIPp far end's SIP port, UDP (default AMI + 2000)
#   CALLBACKD_TESTPBX_FAREND_MEDIA_PORT  its RTP ports, n and n + 2 (default
#                                    10000 + 4 * (AMI port mod 2500): 4 apart per AMI port)
#   CALLBACKD_TESTPBX_FAREND_CTRL_PORT   its SIPp control port, UDP (default AMI + 3000)
# Asterisk's own RTP ports are 100 ports from 20000 + 100 * (AMI port mod 100); Asterisk
# moves on to a free port of its range when one is taken.
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts sourcing this

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PBX_DIR=${CALLBACKD_TESTPBX_DIR:-$REPO/.testpbx}
AMI_PORT=${CALLBACKD_TESTPBX_AMI_PORT:-5038}
[[ $AMI_PORT =~ ^[0-9]+$ ]] && ((AMI_PORT > 0 && AMI_PORT + 3000 < 65536)) || {
    echo "CALLBACKD_TESTPBX_AMI_PORT must be a port number below 62536, not '$AMI_PORT'" >&2
    exit 2
}
SIP_PORT=${CALLBACKD_TESTPBX_SIP_PORT:-$((AMI_PORT + 1000))}
FAREND_PORT=${CALLBACKD_TESTPBX_FAREND_PORT:-$((AMI_PORT + 2000))}
FAREND_MEDIA_PORT=${CALLBACKD_TESTPBX_FAREND_MEDIA_PORT:-$((10000 + 4 * (AMI_PORT % 2500)))}
FAREND_CTRL_PORT=${CALLBACKD_TESTPBX_FAREND_CTRL_PORT:-$((AMI_PORT + 3000))}
RTP_START=$((20000 + 100 * (AMI_PORT % 100)))
RTP_END=$((RTP_START + 99))
FAREND_DIR=$PBX_DIR/farend
