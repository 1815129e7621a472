"""DFF.CONN helpers: DataFlux Func's connector types with DFF's method
names, over the Debian client libraries (python3-pymysql, -redis,
-psycopg2, -pymemcache, -paho-mqtt). Configs are DFF's configJSON
(host, port, user, password, database, ...); secret fields are stored
sealed (src/common/secret.h) and opened by the caller.

check() is the connector's test action: it connects and raises an error
that says what failed.
"""
import re
import time

# Fields DFF enciphers at rest; Tandem seals them.
SECRET_FIELDS = ('password', 'secretKey', 'guanceAPIKey')

# Every connector type DFF has (worker/tasks/func/__init__.py); the ones
# without a helper here are refused by name.
DFF_TYPES = ('guance', 'df_dataway', 'df_datakit', 'dff_sidecar', 'influxdb', 'mysql', 'redis',
             'memcached', 'clickhouse', 'oracle', 'sqlserver', 'postgresql', 'mongodb',
             'elasticsearch', 'nsq', 'mqtt', 'kafka')

CONNECT_TIMEOUT = 5  # s; the test action and every helper


class ConnectorError(Exception):
    """What failed, for the task record and the test action."""


def open_secrets(config, opener):
    out = dict(config)
    for f in SECRET_FIELDS:
        v = out.get(f)
        if isinstance(v, str) and v.startswith('sealed:'):
            try:
                out[f] = opener(v)
            except Exception as e:
                raise ConnectorError('cannot open the sealed `%s`: %s' % (f, e)) from None
    return out


def format_sql(sql, params, esc, ident):
    """DFF's placeholders, filled in: `?` a value (a list -> v1, v2, a list
    of lists -> (..), (..), a dict -> k = v, ...), `??` an identifier. A
    '?' inside quotes stays. esc(v) / ident(name) quote for the driver."""
    if not params:
        return sql.strip()
    if not isinstance(params, (list, tuple)):
        params = [params]

    def value(v):
        if isinstance(v, dict):
            return ', '.join('%s = %s' % (k, 'NULL' if x is None else esc(x)) for k, x in v.items())
        if isinstance(v, (list, tuple, set)):
            return ', '.join('(%s)' % ', '.join(esc(y) for y in x)
                             if isinstance(x, (list, tuple, set)) else esc(x) for x in v)
        return esc(v)

    out, quote, i, n = [], None, 0, 0
    while i < len(sql):
        c = sql[i]
        if quote:
            if c == '\\' and i + 1 < len(sql):
                out.append(sql[i:i + 2])
                i += 2
                continue
            if c == quote:
                quote = None
            out.append(c)
        elif c in '\'"`':
            quote = c
            out.append(c)
        elif c == '?' and n < len(params):
            if sql.startswith('??', i):
                out.append(ident(str(params[n])))
                i += 1
            else:
                out.append(value(params[n]))
            n += 1
        else:
            out.append(c)
        i += 1
    return ''.join(out)


def _port(c, default):
    p = c.get('port') or default
    try:
        return int(p)
    except (TypeError, ValueError):
        raise ConnectorError('port must be a number, got %r' % (p,)) from None


def _connect_error(kind, c, e, default_port):
    return ConnectorError('%s %s:%s: %s: %s' % (kind, c.get('host') or '127.0.0.1',
                                                c.get('port') or default_port,
                                                type(e).__name__, e))


# ---- SQL --------------------------------------------------------------------

class _SQLHelper(object):
    """query / non_query / start_trans / trans_query / trans_non_query /
    commit / rollback, DFF's names. Rows are dicts."""
    kind = 'sql'
    default_port = 0

    def __init__(self, config, database=None, **_):
        self.config = dict(config)
        if database:
            self.config['database'] = database
        self._conn = None

    def _client(self):
        if self._conn is None:
            try:
                self._conn = self._connect()
            except Exception as e:
                raise _connect_error(self.kind, self.config, e, self.default_port) from None
        return self._conn

    def check(self):
        self.query('SELECT 1')

    def _execute(self, conn, sql, sql_params=None, commit=True):
        cur = conn.cursor(**self._cursor_args())
        try:
            cur.execute(format_sql(sql, sql_params, lambda v: self._esc(conn, cur, v),
                                   self._ident))
            rows = [dict(r) for r in cur.fetchall()] if cur.description else []
            count = cur.rowcount
            if commit:
                conn.commit()
            return rows, count
        except Exception:
            if commit:
                conn.rollback()
            raise
        finally:
            cur.close()

    def query(self, sql, sql_params=None):
        return self._execute(self._client(), sql, sql_params)[0]

    def non_query(self, sql, sql_params=None):
        return self._execute(self._client(), sql, sql_params)[1]

    def start_trans(self):
        conn = self._connect()
        return conn

    def trans_query(self, trans_conn, sql, sql_params=None):
        return self._execute(trans_conn, sql, sql_params, commit=False)[0]

    def trans_non_query(self, trans_conn, sql, sql_params=None):
        return self._execute(trans_conn, sql, sql_params, commit=False)[1]

    def commit(self, trans_conn):
        trans_conn.commit()
        trans_conn.close()

    def rollback(self, trans_conn):
        trans_conn.rollback()
        trans_conn.close()

    def dump_for_json(self, val):
        import tandem_dff
        return tandem_dff.json_dumps(val)


class MySQLHelper(_SQLHelper):
    kind = 'mysql'
    default_port = 3306

    def _connect(self):
        import pymysql
        c = self.config
        charset = c.get('charset') or 'utf8mb4'
        return pymysql.connect(host=c.get('host') or '127.0.0.1', port=_port(c, 3306),
                               user=c.get('user'), password=c.get('password') or '',
                               database=c.get('database'), charset=charset,
                               connect_timeout=CONNECT_TIMEOUT, read_timeout=30, write_timeout=30,
                               cursorclass=pymysql.cursors.DictCursor)

    def _cursor_args(self):
        return {}

    @staticmethod
    def _esc(conn, cur, v):
        return conn.escape(v)

    @staticmethod
    def _ident(name):
        return '`%s`' % name.replace('`', '``')


class PostgreSQLHelper(_SQLHelper):
    kind = 'postgresql'
    default_port = 5432

    def _connect(self):
        import psycopg2
        c = self.config
        return psycopg2.connect(host=c.get('host') or '127.0.0.1', port=_port(c, 5432),
                                user=c.get('user'), password=c.get('password') or '',
                                dbname=c.get('database'), connect_timeout=CONNECT_TIMEOUT,
                                client_encoding=c.get('charset') or 'utf8')

    def _cursor_args(self):
        import psycopg2.extras
        return {'cursor_factory': psycopg2.extras.RealDictCursor}

    @staticmethod
    def _esc(conn, cur, v):
        return cur.mogrify('%s', (v,)).decode('utf-8')

    @staticmethod
    def _ident(name):
        return '"%s"' % name.replace('"', '""')


# ---- Redis -----------------------------------------------------------------

def _redis_helper_class():
    import tandem_dff

    class RedisHelper(tandem_dff.RedisCommands):
        """DFF's redis helper: keys as given, DFF's method names and
        results (strings decoded)."""

        def __init__(self, config, database=None, **_):
            import redis
            c = dict(config)
            if database is not None:
                c['db'] = database
            kw = {'host': c.get('host') or '127.0.0.1', 'port': _port(c, 6379),
                  'db': int(c.get('db') or c.get('database') or 0),
                  'socket_connect_timeout': CONNECT_TIMEOUT, 'socket_timeout': 30}
            if c.get('useSSL') or c.get('useTLS'):
                kw['ssl'] = True
                kw['ssl_cert_reqs'] = None
            if c.get('password'):
                if c.get('user') and c.get('authType') == 'aliyun':
                    kw['password'] = '%s:%s' % (c['user'], c['password'])
                else:
                    if c.get('user'):
                        kw['username'] = c['user']
                    kw['password'] = c['password']
            self.config = c
            self.client = redis.Redis(**kw)
            # raw replies; RedisCommands converts them as DFF does
            self.client.response_callbacks.clear()

        def _cmd(self, *args):
            import redis
            try:
                return self.client.execute_command(*args)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                raise _connect_error('redis', self.config, e, 6379) from None

        def run(self, *args, **kwargs):
            return tandem_dff._s(self._cmd(*[a.upper() if i == 0 else a
                                             for i, a in enumerate(args)]))

        query = run

        def check(self):
            self._cmd('PING')

        def dbsize(self):
            return self._cmd('DBSIZE')

        def info(self):
            return tandem_dff._s(self._cmd('INFO'))

    return RedisHelper


# ---- memcached ---------------------------------------------------------------

class MemcachedHelper(object):
    def __init__(self, config, **_):
        from pymemcache.client.hash import HashClient
        servers = config.get('servers') or '127.0.0.1:11211'
        if isinstance(servers, str):
            servers = servers.split(',')
        self.servers = []
        for s in servers:
            host, _, port = s.strip().rpartition(':')
            if not host:
                host, port = port, '11211'
            try:
                self.servers.append((host, int(port)))
            except ValueError:
                raise ConnectorError('memcached server %r: port must be a number' % s) from None
        # default_noreply=False: add/replace answer whether they stored (as DFF's do)
        self.client = HashClient(self.servers, connect_timeout=CONNECT_TIMEOUT, timeout=30,
                                 use_pooling=False, ignore_exc=False, retry_attempts=1,
                                 default_noreply=False)

    def run(self, *args, **kwargs):
        cmd = args[0].lower()
        try:
            r = getattr(self.client, cmd)(*args[1:], **kwargs)
        except (OSError, Exception) as e:
            if isinstance(e, ConnectorError):
                raise
            raise ConnectorError('memcached %s: %s: %s' % (
                ','.join('%s:%d' % s for s in self.servers), type(e).__name__, e)) from None
        return r.decode('utf-8', 'replace') if isinstance(r, bytes) else r

    query = run

    def check(self):
        self.run('set', '__tandem_check', '1', expire=5)
        if self.run('get', '__tandem_check') != '1':
            raise ConnectorError('memcached: a value set could not be read back')

    def get(self, key):
        return self.run('get', key)

    def set(self, key, value):
        return self.run('set', key, value)

    def add(self, key, value):
        return self.run('add', key, value)

    def replace(self, key, value):
        return self.run('replace', key, value)

    def delete(self, key):
        return self.run('delete', key)


# ---- MQTT --------------------------------------------------------------------

class MQTTHelper(object):
    def __init__(self, config, **_):
        import paho.mqtt.client as mqtt
        c = self.config = dict(config)
        client_id = c.get('clientId') or 'tandem@%d' % int(time.time() * 1000)
        try:
            self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5,
                                      transport=c.get('transport') or 'tcp')
        except TypeError:  # paho 2.x wants a callback API version first
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id,
                                      protocol=mqtt.MQTTv5, transport=c.get('transport') or 'tcp')
        user = c.get('user') or c.get('username')
        if user or c.get('password'):
            self.client.username_pw_set(user, c.get('password'))
        try:
            self.client.connect(c.get('host') or '127.0.0.1', _port(c, 1883),
                                int(c.get('keepalive') or 60))
        except Exception as e:
            raise _connect_error('mqtt', c, e, 1883) from None
        # CONNACK: a refused login must fail here, not at the first publish
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not self.client.is_connected() and time.monotonic() < deadline:
            self.client.loop(timeout=0.1)
        if not self.client.is_connected():
            raise ConnectorError('mqtt %s:%s: the broker did not accept the connection '
                                 '(wrong user/password or not an MQTT broker)'
                                 % (c.get('host') or '127.0.0.1', c.get('port') or 1883))

    def __del__(self):
        try:
            self.client.disconnect()
        except Exception:
            pass

    def check(self):
        self.publish('test', 'This is a test message')

    def publish(self, topic, message, qos=0, retain=False):
        for _ in range(3):
            self.client.loop(timeout=0)
            info = self.client.publish(topic=topic, payload=message, qos=qos, retain=retain)
            if info.rc == 0:
                if qos:
                    info.wait_for_publish(timeout=CONNECT_TIMEOUT)
                else:
                    self.client.loop(timeout=0.05)
                return
            self.client.reconnect()
        raise ConnectorError('mqtt publish to %s failed (rc %s)' % (topic, info.rc))

    pub = publish


# type -> constructor; mariadb is MySQL's wire protocol.
HELPERS = {
    'mysql': MySQLHelper,
    'mariadb': MySQLHelper,
    'postgresql': PostgreSQLHelper,
    'redis': lambda config, **kw: _redis_helper_class()(config, **kw),
    'memcached': MemcachedHelper,
    'mqtt': MQTTHelper,
}


def supported(ctype):
    return ctype in HELPERS


def unsupported_message(ctype):
    known = 'a DataFlux Func connector type' if ctype in DFF_TYPES else 'not a connector type'
    return ('connector type `%s` is not supported by Tandem (%s; supported: %s)'
            % (ctype, known, ', '.join(sorted(HELPERS))))


def helper(connector_id, ctype, config, **helper_kwargs):
    import tandem_dff
    if ctype not in HELPERS:
        raise tandem_dff.ConnectorNotSupport('connector `%s`: %s'
                                             % (connector_id, unsupported_message(ctype)))
    try:
        h = HELPERS[ctype](config, **helper_kwargs)
        if isinstance(h, _SQLHelper):
            h._client()  # connect now: a failure names the connector
        return h
    except ConnectorError as e:
        raise ConnectorError('connector `%s` (%s): %s' % (connector_id, ctype, e)) from None


def check(ctype, config):
    """The test action: None when it connects, else what failed (str)."""
    if ctype not in HELPERS:
        return unsupported_message(ctype)
    try:
        HELPERS[ctype](config).check()
    except Exception as e:
        msg = str(e) or type(e).__name__
        return msg if isinstance(e, ConnectorError) else '%s: %s' % (type(e).__name__, msg)
    return None
