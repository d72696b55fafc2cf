/** Video output: MP4 (H.264 via jcodec) and numbered PNG frames. */
package org.dit4j.engine.video;
