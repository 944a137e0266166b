"""Dream a video: frame-coherent DeepDream with optical flow, audio kept, resumable, on
torchrun.

`dream_video` (job.py) is the job: frames decoded and encoded as streams (stream.py), each
frame started from the previous frame's dream detail moved by the optical flow (flow.py,
coherence.py), PNG frames in a work folder so that a killed run resumes, torchrun segments
with warm-ups. `remake_frame` (remake.py) makes one frame again from the record a video
carries (record.py); `video_stability` (stability.py) measures how much the variants boil.
Needs the optional extra: pip install 'dreamkit[video]' (imageio-ffmpeg, OpenCV).
"""

from dreamkit.video.job import VideoResult, dream_video
from dreamkit.video.record import VideoRecipe, VideoRecord, read_video_record
from dreamkit.video.remake import remake_frame
from dreamkit.video.stability import pan_zoom_clip, video_stability, warp_error
from dreamkit.video.stream import VideoInfo, probe

__all__ = ["VideoInfo", "VideoRecipe", "VideoRecord", "VideoResult", "dream_video", "pan_zoom_clip",
           "probe", "read_video_record", "remake_frame", "video_stability", "warp_error"]
