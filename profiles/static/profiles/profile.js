/* The profile 360° page: its identity graph, its activity charts and its event timeline. */

import { activity } from './activity.js';
import { identityGraph } from './identity_graph.js';
import { timeline } from './timeline.js';

const graph = document.getElementById('identity-graph');
if (graph) identityGraph(graph);
const list = document.getElementById('timeline');
if (list) timeline(list);
activity();
