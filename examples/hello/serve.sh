#!/bin/sh
# Serve www/ on $PORT with busybox httpd; with "once" fetch our own page and exit (used by `make run`).
httpd -p "127.0.0.1:${PORT:-8080}" -h /app/www
if [ "$1" = once ]; then
    sleep 0.2
    echo "$(hostname) serves: $(wget -qO- "http://127.0.0.1:${PORT:-8080}/greeting.txt")"
    wget -qO- "http://127.0.0.1:${PORT:-8080}/build.txt"
    exit 0
fi
echo "serving /app/www on port ${PORT:-8080}"
exec tail -f /dev/null
