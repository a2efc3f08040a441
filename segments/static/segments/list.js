/* The segments list. Its filters submit themselves (data-autosubmit, cdp/app.js); what is left
   is the message of the page that sent us here (a segment deleted). */

import { showFlash } from './flash.js';

showFlash();
