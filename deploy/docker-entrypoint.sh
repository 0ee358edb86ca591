#!/bin/sh
# The image's entry point: `lindero "$@"`, after turning every LINDERO_<NAME>_FILE variable into
# LINDERO_<NAME> with that file's content (Compose and Kubernetes secrets are files; the services
# read their secrets, such as LINDERO_AUTH_SECRET, from the environment).
set -eu
for name in $(env | sed -n 's/^\(LINDERO_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    file=$(printenv "${name}_FILE")
    if [ ! -r "$file" ]; then
        echo "lindero-entrypoint: ${name}_FILE names $file, which cannot be read" >&2
        exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done
exec lindero "$@"
