#!/bin/sh
# The spool FreeSWITCH and the secretary share: FreeSWITCH records callers into it and plays the replies from it.
# Run once as root on the FusionPBX host:   sh freeswitch/conf/spool-permissions.sh [--env-file .env] [SPOOL]
#
# FusionPBX runs FreeSWITCH as www-data with UMask=0007, so a recording is 0660 www-data:www-data: nobody else
# can read it, whatever a chmod on the folder says. The secretary reads recordings through the group: the spool's
# folders belong to FreeSWITCH's group, setgid (a new file or folder takes that group), and the service must be
# a member of that group (docker-compose: group_add with FREESWITCH_GID; systemd: SupplementaryGroups=www-data).
# --env-file writes FREESWITCH_GID=<gid> into the docker-compose .env file.
set -eu
ENV_FILE=
if [ "${1:-}" = "--env-file" ]; then
    ENV_FILE=${2:?--env-file needs a file}
    shift 2
fi
SPOOL=${1:-/var/lib/freeswitch/recordings/voiceai}
USER_NAME=${FREESWITCH_USER:-www-data}
GROUP_NAME=${FREESWITCH_GROUP:-www-data}
GID=$(getent group "$GROUP_NAME" | cut -d: -f3)
if [ -z "$GID" ]; then
    echo "no group $GROUP_NAME here: set FREESWITCH_GROUP to the group FreeSWITCH runs as" >&2
    exit 1
fi
mkdir -p "$SPOOL/in" "$SPOOL/out" "$SPOOL/cache"
chown -R "$USER_NAME:$GROUP_NAME" "$SPOOL"
find "$SPOOL" -type d -exec chmod 2770 {} +   # FreeSWITCH and its group only; setgid keeps the group
find "$SPOOL" -type f -exec chmod g+rw {} +
if [ -n "$ENV_FILE" ]; then
    touch "$ENV_FILE"
    grep -v '^FREESWITCH_GID=' "$ENV_FILE" > "$ENV_FILE.tmp" || true
    echo "FREESWITCH_GID=$GID" >> "$ENV_FILE.tmp"
    cat "$ENV_FILE.tmp" > "$ENV_FILE" && rm -f "$ENV_FILE.tmp"
    echo "wrote FREESWITCH_GID=$GID into $ENV_FILE"
fi
echo "spool ready: $SPOOL (owner $USER_NAME, group $GROUP_NAME = gid $GID, folders 2770)"
echo "the secretary must run in group $GROUP_NAME (gid $GID); check with: voiceai doctor"
