import { createReadStream, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

// GraphiQL at /graphiql, with every asset served from node_modules: this service must work with
// no CDN (mercurius's own GraphiQL loads React and GraphiQL from unpkg). graphql-ws's browser
// build gives GraphiQL subscriptions over /graphql.

const require = createRequire(import.meta.url);

/** The directory of an installed package (its exports may hide package.json). */
function packageDir(name: string): string {
  let dir = dirname(require.resolve(name));
  while (!existsSync(join(dir, 'package.json')) || !dir.endsWith(join('node_modules', name))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the directory of ${name}`);
    dir = parent;
  }
  return dir;
}

const ASSETS: Record<string, { file: string; type: string }> = {
  'react.js': { file: join(packageDir('react'), 'umd/react.production.min.js'), type: 'text/javascript' },
  'react-dom.js': { file: join(packageDir('react-dom'), 'umd/react-dom.production.min.js'), type: 'text/javascript' },
  'graphiql.js': { file: join(packageDir('graphiql'), 'graphiql.min.js'), type: 'text/javascript' },
  'graphiql.css': { file: join(packageDir('graphiql'), 'graphiql.min.css'), type: 'text/css' },
  'graphql-ws.js': { file: join(packageDir('graphql-ws'), 'umd/graphql-ws.min.js'), type: 'text/javascript' },
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>wiihey-bridge GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/graphiql/assets/graphiql.css">
  <link rel="stylesheet" href="/graphiql/assets/page.css">
  <link rel="icon" href="data:,">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="/graphiql/assets/react.js"></script>
  <script src="/graphiql/assets/react-dom.js"></script>
  <script src="/graphiql/assets/graphiql.js"></script>
  <script src="/graphiql/assets/graphql-ws.js"></script>
  <script src="/graphiql/assets/start.js"></script>
</body>
</html>
`;

// files of their own: the Content-Security-Policy allows no inline script or style (http/security.ts)
const PAGE_CSS = 'html, body, #graphiql { height: 100%; margin: 0; }\n';

// With API_KEYS: the key of ?apiKey= on the page's URL, or the one the dashboard keeps for this tab,
// as a Bearer header on queries and in connection_init for subscriptions.
const START = `(function () {
  var key = new URLSearchParams(location.search).get('apiKey') || sessionStorage.getItem('wiihey-bridge.apiKey');
  var ws = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql';
  var wsClient = graphqlWs.createClient({ url: ws, connectionParams: key ? { apiKey: key } : {} });
  var fetcher = GraphiQL.createFetcher({ url: '/graphql', wsClient: wsClient, headers: key ? { authorization: 'Bearer ' + key } : {} });
  var query = 'subscription {\\n  stateChanged {\\n    seq\\n    device { deviceId state batteryLevel csq lastSeenAt }\\n    previousState\\n  }\\n}\\n';
  ReactDOM.createRoot(document.getElementById('graphiql'))
    .render(React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: query }));
})();
`;

export async function graphiqlRoutes(app: FastifyInstance): Promise<void> {
  const hidden = { schema: { hide: true } };
  app.get('/graphiql', hidden, async (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
  app.get('/graphiql/assets/start.js', hidden, async (_request, reply) => reply.type('text/javascript').send(START));
  app.get('/graphiql/assets/page.css', hidden, async (_request, reply) => reply.type('text/css').send(PAGE_CSS));
  app.get<{ Params: { name: string } }>('/graphiql/assets/:name', hidden, async (request, reply) => {
    const asset = ASSETS[request.params.name];
    if (asset === undefined) return reply.callNotFound();
    return reply.type(asset.type).header('cache-control', 'public, max-age=86400').send(createReadStream(asset.file));
  });
}
