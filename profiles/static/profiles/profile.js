/* The profile 360° page: its identity graph and its event timeline. */

import { identityGraph } from './identity_graph.js';
import { timeline } from './timeline.js';

const graph = document.getElementById('identity-graph');
if (graph) identityGraph(graph);
const list = document.getElementById('timeline');
if (list) timeline(list);
